//! The QUIC side of HTTP/3: the `h3` crate's transport traits implemented
//! over quinn, in place of the `h3-quinn` adapter, for one thing that
//! adapter cannot give: noticing that a client stopped a request stream
//! (STOP_SENDING, sent when it cancels a request) while the handler still
//! works. `h3-quinn` keeps quinn's send stream private, and `h3` surfaces
//! a stop only when the answer is written, so a handler would run on for a
//! client long gone and its `request.signal` would not fire.
//!
//! Here every accepted request stream leaves quinn's `stopped()` future in
//! a per-connection table ([`Stops`]), keyed by stream id; `h3.rs` takes it
//! when the request is resolved and, once the handler reads its signal,
//! races the handler against it, as the HTTP/2 driver races it against
//! `poll_reset`. Creating the future costs an atomic increment; polling it
//! takes the connection's lock, which is why that waits for the signal. Everything else does what
//! any adapter must: move chunks between quinn's streams and `h3`'s traits
//! and translate quinn's errors into `h3`'s.

use bytes::{Buf, Bytes};
use h3::error::Code;
use h3::quic::{self, ConnectionErrorIncoming, StreamErrorIncoming, StreamId, WriteBuf};
use parking_lot::Mutex;
use quinn::{ReadError, VarInt, WriteError};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio_util::sync::ReusableBoxFuture;

/// Resolves when the client stops the stream (or the connection is lost).
pub(crate) type Stopped = Pin<Box<dyn Future<Output = ()> + Send + Sync>>;

/// The `stopped()` futures of a connection's request streams not yet
/// resolved into requests. An entry is taken by the request's task, or
/// removed when the stream ends unresolved (its send half is dropped), so
/// the table holds at most the streams in flight. Cost per request: one
/// boxed future, one insert and one removal under an uncontended lock.
#[derive(Clone, Default)]
pub(crate) struct Stops(Arc<Mutex<HashMap<u64, Stopped>>>);

impl Stops {
    /// The stop watch of request stream `id`, once.
    pub(crate) fn take(&self, id: StreamId) -> Option<Stopped> {
        self.0.lock().remove(&id.into_inner())
    }
}

type Accepted<T> = Pin<Box<dyn Future<Output = Result<T, quinn::ConnectionError>> + Send + Sync>>;

/// Polls the stream operation waiting in `slot` (started by `start` when
/// none is), and empties the slot once it is done.
fn poll_op<T>(
    slot: &mut Option<Accepted<T>>,
    cx: &mut Context<'_>,
    start: impl FnOnce() -> Accepted<T>,
) -> Poll<Result<T, quinn::ConnectionError>> {
    let out = ready!(slot.get_or_insert_with(start).as_mut().poll(cx));
    *slot = None;
    Poll::Ready(out)
}

/// A quinn connection as `h3` sees it.
pub(crate) struct Conn {
    conn: quinn::Connection,
    stops: Stops,
    accept_bi: Option<Accepted<(quinn::SendStream, quinn::RecvStream)>>,
    accept_uni: Option<Accepted<quinn::RecvStream>>,
    opener: Opener,
}

impl Conn {
    pub(crate) fn new(conn: quinn::Connection, stops: Stops) -> Self {
        Conn {
            opener: Opener {
                conn: conn.clone(),
                open_bi: None,
                open_uni: None,
            },
            conn,
            stops,
            accept_bi: None,
            accept_uni: None,
        }
    }
}

impl<B: Buf> quic::Connection<B> for Conn {
    type RecvStream = RecvHalf;
    type OpenStreams = Opener;

    fn poll_accept_recv(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<RecvHalf, ConnectionErrorIncoming>> {
        let conn = &self.conn;
        let out = ready!(poll_op(&mut self.accept_uni, cx, || {
            let c = conn.clone();
            Box::pin(async move { c.accept_uni().await })
        }));
        Poll::Ready(out.map(RecvHalf::new).map_err(conn_error))
    }

    fn poll_accept_bidi(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Bidi<B>, ConnectionErrorIncoming>> {
        let conn = &self.conn;
        let out = ready!(poll_op(&mut self.accept_bi, cx, || {
            let c = conn.clone();
            Box::pin(async move { c.accept_bi().await })
        }));
        let (send, recv) = out.map_err(conn_error)?;
        let id = u64::from(send.id());
        let stopped = send.stopped();
        self.stops.0.lock().insert(
            id,
            Box::pin(async move {
                let _ = stopped.await;
            }),
        );
        let mut send = SendHalf::new(send);
        send.watched = Some(self.stops.clone());
        Poll::Ready(Ok(Bidi {
            send,
            recv: RecvHalf::new(recv),
        }))
    }

    fn opener(&self) -> Opener {
        Opener {
            conn: self.conn.clone(),
            open_bi: None,
            open_uni: None,
        }
    }
}

impl<B: Buf> quic::OpenStreams<B> for Conn {
    type BidiStream = Bidi<B>;
    type SendStream = SendHalf<B>;

    fn poll_open_bidi(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Bidi<B>, StreamErrorIncoming>> {
        quic::OpenStreams::<B>::poll_open_bidi(&mut self.opener, cx)
    }

    fn poll_open_send(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<SendHalf<B>, StreamErrorIncoming>> {
        quic::OpenStreams::<B>::poll_open_send(&mut self.opener, cx)
    }

    fn close(&mut self, code: Code, reason: &[u8]) {
        close(&self.conn, code, reason)
    }
}

fn close(conn: &quinn::Connection, code: Code, reason: &[u8]) {
    conn.close(
        VarInt::from_u64(code.value()).unwrap_or(VarInt::MAX),
        reason,
    )
}

/// Opens the server's own streams (control and QPACK streams).
pub(crate) struct Opener {
    conn: quinn::Connection,
    open_bi: Option<Accepted<(quinn::SendStream, quinn::RecvStream)>>,
    open_uni: Option<Accepted<quinn::SendStream>>,
}

impl<B: Buf> quic::OpenStreams<B> for Opener {
    type BidiStream = Bidi<B>;
    type SendStream = SendHalf<B>;

    fn poll_open_bidi(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Bidi<B>, StreamErrorIncoming>> {
        let conn = &self.conn;
        let out = ready!(poll_op(&mut self.open_bi, cx, || {
            let c = conn.clone();
            Box::pin(async move { c.open_bi().await })
        }));
        let (send, recv) = out.map_err(lost)?;
        Poll::Ready(Ok(Bidi {
            send: SendHalf::new(send),
            recv: RecvHalf::new(recv),
        }))
    }

    fn poll_open_send(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<SendHalf<B>, StreamErrorIncoming>> {
        let conn = &self.conn;
        let out = ready!(poll_op(&mut self.open_uni, cx, || {
            let c = conn.clone();
            Box::pin(async move { c.open_uni().await })
        }));
        Poll::Ready(out.map(SendHalf::new).map_err(lost))
    }

    fn close(&mut self, code: Code, reason: &[u8]) {
        close(&self.conn, code, reason)
    }
}

/// A request stream, before `h3` splits it.
pub(crate) struct Bidi<B: Buf> {
    send: SendHalf<B>,
    recv: RecvHalf,
}

impl<B: Buf> quic::BidiStream<B> for Bidi<B> {
    type SendStream = SendHalf<B>;
    type RecvStream = RecvHalf;

    fn split(self) -> (SendHalf<B>, RecvHalf) {
        (self.send, self.recv)
    }
}

impl<B: Buf> quic::RecvStream for Bidi<B> {
    type Buf = Bytes;

    fn poll_data(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Bytes>, StreamErrorIncoming>> {
        self.recv.poll_data(cx)
    }

    fn stop_sending(&mut self, error_code: u64) {
        self.recv.stop_sending(error_code)
    }

    fn recv_id(&self) -> StreamId {
        self.recv.recv_id()
    }
}

impl<B: Buf> quic::SendStream<B> for Bidi<B> {
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        self.send.poll_ready(cx)
    }

    fn send_data<T: Into<WriteBuf<B>>>(&mut self, data: T) -> Result<(), StreamErrorIncoming> {
        self.send.send_data(data)
    }

    fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        self.send.poll_finish(cx)
    }

    fn reset(&mut self, reset_code: u64) {
        self.send.reset(reset_code)
    }

    fn send_id(&self) -> StreamId {
        self.send.send_id()
    }
}

type Read = (quinn::RecvStream, Result<Option<quinn::Chunk>, ReadError>);

/// The receiving half: quinn's chunks, handed over without a copy. quinn
/// reads through `&mut self`, so the stream moves into the read's future and
/// comes back with the chunk; the future's box is reused from one read to
/// the next (one allocation per stream, not per chunk).
pub(crate) struct RecvHalf {
    stream: Option<quinn::RecvStream>,
    read: Option<ReusableBoxFuture<'static, Read>>,
    reading: bool,
    id: StreamId,
    /// A stop asked for while a read held the stream: applied when it returns.
    stop: Option<u64>,
}

impl RecvHalf {
    fn new(stream: quinn::RecvStream) -> Self {
        let id = stream_id(u64::from(stream.id()));
        RecvHalf {
            stream: Some(stream),
            read: None,
            reading: false,
            id,
            stop: None,
        }
    }
}

async fn read_chunk(mut s: quinn::RecvStream) -> Read {
    let r = s.read_chunk(usize::MAX, true).await;
    (s, r)
}

impl quic::RecvStream for RecvHalf {
    type Buf = Bytes;

    fn poll_data(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Bytes>, StreamErrorIncoming>> {
        if !self.reading {
            let Some(s) = self.stream.take() else {
                return Poll::Ready(Ok(None));
            };
            match &mut self.read {
                Some(f) => f.set(read_chunk(s)),
                None => self.read = Some(ReusableBoxFuture::new(read_chunk(s))),
            }
            self.reading = true;
        }
        let Some(fut) = self.read.as_mut() else {
            return Poll::Ready(Ok(None));
        };
        let (mut s, r) = ready!(fut.poll(cx));
        self.reading = false;
        if let Some(code) = self.stop.take() {
            let _ = s.stop(VarInt::from_u64(code).unwrap_or(VarInt::MAX));
        }
        self.stream = Some(s);
        Poll::Ready(r.map(|c| c.map(|c| c.bytes)).map_err(read_error))
    }

    fn stop_sending(&mut self, error_code: u64) {
        match self.stream.as_mut() {
            Some(s) => {
                let _ = s.stop(VarInt::from_u64(error_code).unwrap_or(VarInt::MAX));
            }
            None => self.stop = Some(error_code),
        }
    }

    fn recv_id(&self) -> StreamId {
        self.id
    }
}

/// The sending half: `h3` hands over one frame at a time and polls until it
/// is written.
pub(crate) struct SendHalf<B: Buf> {
    stream: quinn::SendStream,
    pending: Option<WriteBuf<B>>,
    /// The table this request stream's stop watch was left in.
    watched: Option<Stops>,
}

impl<B: Buf> SendHalf<B> {
    fn new(stream: quinn::SendStream) -> Self {
        SendHalf {
            stream,
            pending: None,
            watched: None,
        }
    }
}

impl<B: Buf> Drop for SendHalf<B> {
    fn drop(&mut self) {
        if let Some(stops) = &self.watched {
            stops.0.lock().remove(&u64::from(self.stream.id()));
        }
    }
}

impl<B: Buf> quic::SendStream<B> for SendHalf<B> {
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        if let Some(buf) = self.pending.as_mut() {
            while buf.has_remaining() {
                let n = ready!(Pin::new(&mut self.stream).poll_write(cx, buf.chunk()))
                    .map_err(write_error)?;
                buf.advance(n);
            }
        }
        self.pending = None;
        Poll::Ready(Ok(()))
    }

    fn send_data<T: Into<WriteBuf<B>>>(&mut self, data: T) -> Result<(), StreamErrorIncoming> {
        if self.pending.is_some() {
            // `h3` waits for `poll_ready` before the next frame; not doing so is its bug.
            return Err(StreamErrorIncoming::ConnectionErrorIncoming {
                connection_error: ConnectionErrorIncoming::InternalError(
                    "a frame was sent before the previous one was written".into(),
                ),
            });
        }
        self.pending = Some(data.into());
        Ok(())
    }

    fn poll_finish(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        Poll::Ready(
            self.stream
                .finish()
                .map_err(|e| StreamErrorIncoming::Unknown(Box::new(e))),
        )
    }

    fn reset(&mut self, reset_code: u64) {
        let _ = self
            .stream
            .reset(VarInt::from_u64(reset_code).unwrap_or(VarInt::MAX));
    }

    fn send_id(&self) -> StreamId {
        stream_id(u64::from(self.stream.id()))
    }
}

/// quinn's stream ids are QUIC varints (below 2^62), the range `h3`'s accept.
fn stream_id(id: u64) -> StreamId {
    #[allow(clippy::expect_used)]
    StreamId::try_from(id).expect("a QUIC stream id is a varint")
}

fn conn_error(e: quinn::ConnectionError) -> ConnectionErrorIncoming {
    match e {
        quinn::ConnectionError::ApplicationClosed(c) => ConnectionErrorIncoming::ApplicationClose {
            error_code: c.error_code.into_inner(),
        },
        quinn::ConnectionError::TimedOut => ConnectionErrorIncoming::Timeout,
        other => ConnectionErrorIncoming::Undefined(Arc::new(other)),
    }
}

fn terminated(code: VarInt) -> StreamErrorIncoming {
    StreamErrorIncoming::StreamTerminated {
        error_code: code.into_inner(),
    }
}

fn lost(e: quinn::ConnectionError) -> StreamErrorIncoming {
    StreamErrorIncoming::ConnectionErrorIncoming {
        connection_error: conn_error(e),
    }
}

fn read_error(e: ReadError) -> StreamErrorIncoming {
    match e {
        ReadError::Reset(code) => terminated(code),
        ReadError::ConnectionLost(c) => lost(c),
        other => StreamErrorIncoming::Unknown(Box::new(other)),
    }
}

fn write_error(e: WriteError) -> StreamErrorIncoming {
    match e {
        WriteError::Stopped(code) => terminated(code),
        WriteError::ConnectionLost(c) => lost(c),
        other => StreamErrorIncoming::Unknown(Box::new(other)),
    }
}
