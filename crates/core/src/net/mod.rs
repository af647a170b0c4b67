//! Where a request starts: the TCP listener accepts a connection, and
//! `conn` finds out which protocol it speaks (cleartext sniffing or TLS
//! ALPN) and hands it to its driver in `proto`.

pub(crate) mod conn;
pub(crate) mod corked;
pub(crate) mod listener;
pub(crate) mod shared_tls;
