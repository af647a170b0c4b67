//! The HTTP protocol drivers. Each one turns a connection's byte stream
//! into requests for `service::handle` and writes its responses back.

pub(crate) mod h1;
pub(crate) mod h2;
#[cfg(feature = "http3")]
pub(crate) mod h3;

/// Binds the HTTP/3 UDP socket when the configuration asks for one.
#[cfg(feature = "http3")]
pub(crate) fn bind_http3(
    config: &crate::ServerConfig,
) -> crate::Result<Option<std::net::UdpSocket>> {
    match &config.http3 {
        None => Ok(None),
        Some(_) if config.tls.is_none() => Err(crate::Error::new(
            crate::ErrorKind::Tls,
            "HTTP/3 needs TLS: set the tls option",
        )),
        Some(h3) => h3::bind(config, h3).map(Some),
    }
}

#[cfg(feature = "http3")]
pub(crate) use h3::start as start_http3;

#[cfg(not(feature = "http3"))]
pub(crate) fn bind_http3(
    config: &crate::ServerConfig,
) -> crate::Result<Option<std::net::UdpSocket>> {
    match config.http3 {
        None => Ok(None),
        Some(_) => Err(crate::Error::new(
            crate::ErrorKind::Listen,
            "this build of httpy has no HTTP/3 (the http3 feature is off)",
        )),
    }
}

#[cfg(not(feature = "http3"))]
pub(crate) fn start_http3(
    _shared: std::sync::Arc<crate::server::Shared>,
    _socket: std::net::UdpSocket,
) -> crate::Result<()> {
    Ok(())
}
