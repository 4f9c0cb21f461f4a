//! A stable C ABI over `fcgi-core`. The exported API lands with the fcgi-capi issue.
