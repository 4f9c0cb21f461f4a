//! The calling thread's ids, as the logs name threads.

/// pthread_self(3) (Python's thread ident) and the kernel's id (what `top -H` and py-spy show).
pub(crate) fn current() -> (u64, i64) {
    thread_local! {
        // SAFETY: pthread_self(3) and gettid(2) take nothing and cannot fail.
        static IDS: (u64, i64) = unsafe { (libc::pthread_self() as u64, i64::from(libc::gettid())) };
    }
    IDS.with(|ids| *ids)
}

/// The calling thread's pthread_self(3): what Python's `threading.get_ident()` says, and what
/// [`Lifecycle::interrupt`](super::lifecycle::Lifecycle::interrupt) and `stack_of` are given.
pub fn thread_ident() -> u64 {
    current().0
}
