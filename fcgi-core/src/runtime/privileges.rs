//! Privileges: the user and group a server drops to once its socket is bound (and before a
//! face loads its app), the owner given to a Unix socket it binds, and the umask. Names are
//! looked up with the reentrant getpwnam_r(3) and getgrnam_r(3); the drop is initgroups(3) (or
//! setgroups(2) to the one group), setgid(2), then setuid(2), and checked afterwards.

use std::ffi::{CStr, CString};
use std::io;
use std::path::Path;

/// Who the process becomes: the ids asked for by the `user` and `group` settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Identity {
    /// The user's uid, if `user` is set.
    pub uid: Option<u32>,
    /// The group's gid: `group`, else the user's own group.
    pub gid: Option<u32>,
    /// What the settings said, for messages.
    label: String,
    /// The user's name, whose supplementary groups initgroups(3) gives: `None` for a uid with no
    /// passwd entry, or when `group` is set (then the process keeps that one group alone).
    groups_of: Option<CString>,
}

impl Identity {
    /// Looks up `user` (a name or a uid) and `group` (a name or a gid). An unknown name is an
    /// error that says which; a number that names no entry is taken as it is.
    pub fn resolve(user: Option<&str>, group: Option<&str>) -> Result<Self, String> {
        let mut identity = Self::default();
        if let Some(user) = user {
            let (name, uid, gid) = lookup_user(user)?;
            identity.uid = Some(uid);
            identity.gid = gid;
            identity.groups_of = name;
            identity.label = format!("user {user}");
        }
        if let Some(group) = group {
            identity.gid = Some(lookup_group(group)?);
            identity.groups_of = None;
            identity.label = if identity.label.is_empty() {
                format!("group {group}")
            } else {
                format!("{}, group {group}", identity.label)
            };
        }
        Ok(identity)
    }

    /// Whether there is anything to change.
    pub fn is_empty(&self) -> bool {
        self.uid.is_none() && self.gid.is_none()
    }

    /// Whether this process may take the identity: it is root, or runs as it already (as after
    /// a reload re-executes a program that dropped its privileges). `Ok(false)`: nothing to do.
    pub fn check_permitted(&self) -> io::Result<bool> {
        if self.is_empty() {
            return Ok(false);
        }
        // SAFETY: get*id(2) only read the process's credentials; they cannot fail.
        let (uid, euid, gid, egid) = unsafe { (libc::getuid(), libc::geteuid(), libc::getgid(), libc::getegid()) };
        if euid == 0 {
            return Ok(true);
        }
        let same_user = self.uid.is_none_or(|want| want == uid && want == euid);
        let same_group = self.gid.is_none_or(|want| want == gid && want == egid);
        if same_user && same_group {
            return Ok(false);
        }
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{}: changing the process's user or group needs root, and it runs as uid {euid}, gid {egid}",
                self.label
            ),
        ))
    }

    /// Makes this process (every thread of it: glibc applies set*id to all) run as the identity;
    /// refused as [`check_permitted`](Self::check_permitted) says.
    pub fn drop_privileges(&self) -> io::Result<()> {
        if !self.check_permitted()? {
            return Ok(());
        }
        let failed = |call: &str| {
            let e = io::Error::last_os_error();
            io::Error::new(e.kind(), format!("{}: {call}: {e}", self.label))
        };
        if let Some(gid) = self.gid {
            let rc = match &self.groups_of {
                // SAFETY: a NUL-terminated name and a gid; initgroups(3) reads the group database.
                Some(name) => unsafe { libc::initgroups(name.as_ptr(), gid) },
                // SAFETY: setgroups(2) reads one gid from a valid pointer.
                None => unsafe { libc::setgroups(1, &gid) },
            };
            if rc != 0 {
                return Err(failed("setting the supplementary groups"));
            }
            // SAFETY: setgid(2) takes a number; glibc applies it to every thread.
            if unsafe { libc::setgid(gid) } != 0 {
                return Err(failed("setgid"));
            }
        }
        if let Some(uid) = self.uid {
            // SAFETY: setuid(2) takes a number; glibc applies it to every thread.
            if unsafe { libc::setuid(uid) } != 0 {
                return Err(failed("setuid"));
            }
        }
        // A drop that did not take (a seccomp filter, a kernel refusing it) must not serve as root.
        // SAFETY: as above, reads only.
        let (now_uid, now_euid, now_gid) = unsafe { (libc::getuid(), libc::geteuid(), libc::getgid()) };
        let user_taken = self.uid.is_none_or(|want| now_uid == want && now_euid == want);
        let group_taken = self.gid.is_none_or(|want| now_gid == want);
        // SAFETY: setuid(0) after dropping root must fail; it changes nothing if it does.
        let root_gone = self.uid.is_none_or(|want| want == 0 || unsafe { libc::setuid(0) } != 0);
        if !(user_taken && group_taken && root_gone) {
            return Err(io::Error::other(format!("{}: the change of user did not take", self.label)));
        }
        log::info!("running as {} (uid {now_euid}, gid {now_gid})", self.label);
        Ok(())
    }
}

/// The `socket_owner` setting, `USER:GROUP`, `USER` or `:GROUP`, as ids to chown(2) to.
pub fn owner(spec: &str) -> Result<(Option<u32>, Option<u32>), String> {
    let (user, group) = spec.split_once(':').unwrap_or((spec, ""));
    let uid = (!user.is_empty()).then(|| lookup_user(user).map(|(_, uid, _)| uid)).transpose()?;
    let gid = (!group.is_empty()).then(|| lookup_group(group)).transpose()?;
    if uid.is_none() && gid.is_none() {
        return Err(format!("{spec:?} names neither a user nor a group (USER:GROUP, USER or :GROUP)"));
    }
    Ok((uid, gid))
}

/// Gives the socket file at `path` the owner `spec` ([`owner`]).
pub fn chown_socket(path: &Path, spec: &str) -> io::Result<()> {
    let (uid, gid) =
        owner(spec).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("socket_owner: {e}")))?;
    std::os::unix::fs::chown(path, uid, gid)
        .map_err(|e| io::Error::new(e.kind(), format!("socket_owner {spec}: chown {}: {e}", path.display())))
}

/// Sets the process's file-creation mask.
pub fn set_umask(mask: u32) {
    // SAFETY: umask(2) only swaps the process's file-creation mask; it cannot fail.
    unsafe { libc::umask(mask as libc::mode_t) };
}

/// A user's name (if it has a passwd entry), uid and primary gid.
fn lookup_user(user: &str) -> Result<(Option<CString>, u32, Option<u32>), String> {
    let numeric = user.parse::<u32>().ok();
    let name = CString::new(user).map_err(|_| format!("no user named {user:?}"))?;
    let mut entry: libc::passwd = zeroed_passwd();
    let mut buffer = vec![0 as libc::c_char; 16 * 1024];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    let rc = match numeric {
        // SAFETY: every pointer is valid for the sizes given; the result points into `entry`
        // and `buffer`, which outlive every use of it below.
        Some(uid) => unsafe { libc::getpwuid_r(uid, &mut entry, buffer.as_mut_ptr(), buffer.len(), &mut found) },
        // SAFETY: as above, with a NUL-terminated name.
        None => unsafe { libc::getpwnam_r(name.as_ptr(), &mut entry, buffer.as_mut_ptr(), buffer.len(), &mut found) },
    };
    if rc != 0 {
        return Err(format!("looking up user {user:?}: {}", io::Error::from_raw_os_error(rc)));
    }
    if found.is_null() {
        return match numeric {
            Some(uid) => Ok((None, uid, None)),
            None => Err(format!("no user named {user:?}")),
        };
    }
    // SAFETY: a non-NULL result is `entry`, whose pw_name points to a NUL-terminated string in
    // `buffer`.
    let login = unsafe { CStr::from_ptr(entry.pw_name) }.to_owned();
    Ok((Some(login), entry.pw_uid, Some(entry.pw_gid)))
}

/// A group's gid.
fn lookup_group(group: &str) -> Result<u32, String> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(gid);
    }
    let name = CString::new(group).map_err(|_| format!("no group named {group:?}"))?;
    // SAFETY: group is plain old data for which all-zero bytes are a valid value.
    let mut entry: libc::group = unsafe { std::mem::zeroed() };
    let mut buffer = vec![0 as libc::c_char; 64 * 1024];
    let mut found: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the sizes given, the name NUL-terminated.
    let rc = unsafe { libc::getgrnam_r(name.as_ptr(), &mut entry, buffer.as_mut_ptr(), buffer.len(), &mut found) };
    if rc != 0 {
        return Err(format!("looking up group {group:?}: {}", io::Error::from_raw_os_error(rc)));
    }
    if found.is_null() {
        return Err(format!("no group named {group:?}"));
    }
    Ok(entry.gr_gid)
}

fn zeroed_passwd() -> libc::passwd {
    // SAFETY: passwd is plain old data for which all-zero bytes are a valid value.
    unsafe { std::mem::zeroed() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_resolve() {
        let root = Identity::resolve(Some("root"), None).unwrap();
        assert_eq!((root.uid, root.gid), (Some(0), Some(0)));
        assert!(root.groups_of.is_some(), "a named user keeps its supplementary groups");
        let numeric = Identity::resolve(Some("0"), Some("0")).unwrap();
        assert_eq!((numeric.uid, numeric.gid), (Some(0), Some(0)));
        assert!(numeric.groups_of.is_none(), "with a group given, the process keeps that one");
        let unnamed = Identity::resolve(Some("4000000000"), None).unwrap();
        assert_eq!((unnamed.uid, unnamed.gid), (Some(4_000_000_000), None));
        assert!(Identity::resolve(None, None).unwrap().is_empty());
    }

    #[test]
    fn unknown_names_are_refused_by_name() {
        let e = Identity::resolve(Some("no-such-user-fcgi"), None).unwrap_err();
        assert!(e.contains("no user named \"no-such-user-fcgi\""), "{e}");
        let e = Identity::resolve(None, Some("no-such-group-fcgi")).unwrap_err();
        assert!(e.contains("no group named \"no-such-group-fcgi\""), "{e}");
    }

    #[test]
    fn socket_owners_parse() {
        assert_eq!(owner("0:0").unwrap(), (Some(0), Some(0)));
        assert_eq!(owner("root").unwrap(), (Some(0), None));
        assert_eq!(owner(":0").unwrap(), (None, Some(0)));
        assert!(owner(":").is_err());
        assert!(owner("root:no-such-group-fcgi").is_err());
    }

    #[test]
    fn without_root_only_the_current_identity_is_accepted() {
        // SAFETY: reads only.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        if uid == 0 {
            return; // root may become anyone: the Python tests drop to nobody.
        }
        let same = Identity::resolve(Some(&uid.to_string()), Some(&gid.to_string())).unwrap();
        same.drop_privileges().unwrap();
        let e = Identity::resolve(Some("0"), None).unwrap().drop_privileges().unwrap_err();
        assert!(e.to_string().contains("needs root"), "{e}");
    }
}
