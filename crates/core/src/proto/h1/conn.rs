//! The own HTTP/1.1 connection loop: read a head, hand the request to the
//! dispatcher, feed its body on demand, write the response, repeat.
//!
//! One request is in flight at a time (pipelined requests wait in the read
//! buffer and are answered in order). While a handler runs, the loop also
//! reads the socket: a read *error* (the client reset the connection) drops
//! the request's future, which fires its abort (`request.signal`), as does
//! an EOF before the end of a body being read; an EOF after the request is
//! a half-close and the answer is still written, so a client that shuts
//! down its write side after sending gets its response.
//!
//! Responses are coalesced: a response is written when the loop would
//! otherwise wait (for input, or for a handler that did not answer at
//! once), so answers to pipelined requests leave in one write.
//!
//! A request the dispatcher can answer from stored bytes (a route-cache
//! hit, `Dispatch::answer_stored`) is answered while its head is parsed,
//! before a `Request` exists; everything else takes the dispatcher's call.

use bytes::{Buf, Bytes, BytesMut};
use http::{Request, Response};
use http_body::Body as _;
use http_body_util::BodyExt;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;
use tokio_util::io::{poll_read_buf, poll_write_buf};
use tokio_util::sync::WaitForCancellationFuture;

use super::body::{self, BodyError, ReqBody, Want};
use super::decode::{Decoded, Decoder};
use super::direct;
use super::encode::{self, Framing, ReqFacts};
use super::io::{release, reserve, Transport, IDLE_CLOSE_LIMIT, MAX_KEPT};
use super::role::{self, Parsed, Refusal};
use super::PARK_AFTER;
use crate::body::ResBody;
use crate::dispatch::limits::MIN_PROTOCOL_HEAD;
use crate::dispatch::{ConnInfo, Dispatch, StoredReq};
use crate::embedder::direct::{CloseOnDrop, Look, Taken};
use crate::lifecycle::Lifecycle;
use crate::observe::stats::Stats;
use crate::proto::Env;

/// A body at most this large is copied behind its head (one write); a
/// larger one is written from its own buffer with a vectored write, so a
/// lent `Bytes` is never copied. 16 KiB: a copy of that costs ~1 µs, the
/// size where a second iovec starts to be cheaper.
const COPY_MAX: usize = 16 * 1024;

/// Pending output past which the loop writes before reading on.
const WRITE_HIGH: usize = 64 * 1024;

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
const BAD_REQUEST: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
const TOO_LARGE: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
const TIMEOUT: &[u8] =
    b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";

/// What the loop does with the connection once it returns.
pub(crate) enum End<T> {
    /// Closed (or to be dropped at once).
    Closed,
    /// Hand `T` to hyper, replaying these bytes first.
    HandOff(T, Bytes),
}

/// A request body still being read from the socket.
enum Pump {
    None,
    Active {
        dec: Decoder,
        tx: tokio::sync::mpsc::Sender<Result<Bytes, BodyError>>,
        want: Arc<Want>,
        cont: bool,
    },
    /// The consumer left before the end; what is left of it is skipped
    /// once the response is out, or the connection closes.
    Abandoned(Decoder),
    /// The body is unusable (bad framing): close after the answer. (A body
    /// cut short, or a read error, drops the request instead.)
    Broken,
}

/// How the wait for a handler ended.
enum Flight {
    Done(Response<ResBody>),
    /// The embedder wrote the answer itself (`direct.rs`).
    Direct,
    /// A request armed for a direct answer reached its deadline unanswered.
    TimedOut,
    /// The client reset the connection, or writing failed.
    Gone,
    Forced,
}

/// What ended the wait for a request head, other than a whole head.
enum Woke {
    Forced,
    Read(io::Result<usize>),
    Clock,
    Closing,
}

/// The server's close signals as the loop sees them. A look reads the two
/// flags (an atomic load each); the task's waker is registered on the
/// signals' tokens only when it is not the one registered already, i.e.
/// once per connection (a Tokio task's waker stays the same). Before, the
/// loop polled the tokens' futures at each look and asked `is_cancelled`
/// between them: a mutex, and a waiter list's lock per future polled,
/// ~10 locks per JS request and ~8 per cached one (docs/performance.md
/// §17.7).
struct Signals<'a, 'p> {
    life: &'a Lifecycle,
    force: Pin<&'p mut WaitForCancellationFuture<'a>>,
    shutdown: Pin<&'p mut WaitForCancellationFuture<'a>>,
    /// The waker the tokens will wake.
    waker: Option<Waker>,
}

#[cfg(test)]
thread_local! {
    /// Registrations made on this thread (see the tests in `mod.rs`).
    pub(super) static REGISTRATIONS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl Signals<'_, '_> {
    /// (forced, closing); registers `cx`'s waker if it is new.
    fn look(&mut self, cx: &mut Context<'_>) -> (bool, bool) {
        if !self.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            // A future that completed stays complete when polled again.
            let _ = self.force.as_mut().poll(cx);
            let _ = self.shutdown.as_mut().poll(cx);
            self.waker = Some(cx.waker().clone());
            #[cfg(test)]
            REGISTRATIONS.with(|n| n.set(n.get() + 1));
        }
        (
            self.life.force.is_cancelled(),
            self.life.shutdown.is_cancelled(),
        )
    }

    /// Pending until a forced close.
    fn poll_forced(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.look(cx).0 {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// A parked connection counted in `connectionsIdle` until dropped.
struct Parked<'a>(&'a Stats);

impl Drop for Parked<'_> {
    fn drop(&mut self) {
        Stats::dec(&self.0.connections_idle);
    }
}

pub(crate) async fn run<D: Dispatch, T: Transport>(
    env: &Arc<Env<D>>,
    info: &Arc<ConnInfo>,
    mut io: T,
) -> End<T> {
    let cfg = &env.config;
    let max_head = cfg.max_header_size.max(MIN_PROTOCOL_HEAD);
    let idle_limit = env.idle_limit();
    let mut rbuf = BytesMut::new();
    let mut wbuf = BytesMut::new();
    let mut eof = false;
    // Created once per connection and polled only to register this task
    // (see `Signals`).
    let force = env.life.force.cancelled();
    let shutdown = env.life.shutdown.cancelled();
    let clock = tokio::time::sleep(PARK_AFTER);
    tokio::pin!(force, shutdown, clock);
    let mut signals = Signals {
        life: &env.life,
        force,
        shutdown,
        waker: None,
    };
    // The dispatcher's future lives in one allocation per connection,
    // reused by each request (as hyper does), and freed while parked.
    let mut slot = None;
    // Answers written from the embedder's thread (`direct.rs`): the slot
    // is closed by this guard before `io` is dropped or handed on (locals
    // drop before the function's arguments).
    let direct = direct::slot_of(&io).map(|s| {
        let _ = info.direct.set(s.clone());
        CloseOnDrop(s)
    });

    // When the last answer was written from the embedder's thread.
    let mut answered_at: Option<Instant> = None;

    'requests: loop {
        // --- Wait for a whole head. ---
        let idle_since = answered_at.take().unwrap_or_else(Instant::now);
        let mut parked: Option<Parked<'_>> = None;
        // The clock must fire by the first moment this wait cares about;
        // it was pushed further only by a park (or by a wait that ended).
        let first_check = idle_since + if T::PARKS { PARK_AFTER } else { idle_limit };
        if clock.deadline() > first_check {
            clock.as_mut().reset(first_check);
        }
        let head = loop {
            if !rbuf.is_empty() {
                // A route-cache hit is answered here, from its stored
                // bytes, on a connection that stays open after it.
                let stored = |q: &StoredReq<'_>| {
                    cfg.keep_alive
                        && !env.life.shutdown.is_cancelled()
                        && env
                            .dispatch
                            .answer_stored(info, q, &encode::CANNED, &mut wbuf)
                };
                match role::parse(&mut rbuf, stored) {
                    Ok(Some(Parsed::Head(head))) => break head,
                    Ok(Some(Parsed::Answered)) => {
                        // As after any answer: it waits for the next
                        // pipelined one's, up to WRITE_HIGH.
                        if (rbuf.is_empty() || wbuf.len() >= WRITE_HIGH)
                            && flush(&mut io, &mut wbuf).await.is_err()
                        {
                            return End::Closed;
                        }
                        continue 'requests;
                    }
                    Ok(None) if rbuf.len() >= max_head => {
                        return refuse(io, wbuf, TOO_LARGE).await;
                    }
                    Ok(None) => {}
                    Err(Refusal::Bad(_)) => return refuse(io, wbuf, BAD_REQUEST).await,
                    Err(Refusal::TooLarge) => return refuse(io, wbuf, TOO_LARGE).await,
                    Err(Refusal::HandOff) => {
                        if flush(&mut io, &mut wbuf).await.is_err() {
                            return End::Closed;
                        }
                        return End::HandOff(io, rbuf.freeze());
                    }
                }
            }
            if eof || env.life.shutdown.is_cancelled() {
                close(&mut io, &mut wbuf).await;
                return End::Closed;
            }
            if flush(&mut io, &mut wbuf).await.is_err() {
                return End::Closed;
            }
            let deadline = idle_since + idle_limit;
            // In this order: a forced close, input, the clock, a graceful
            // close.
            let woke = poll_fn(|cx| {
                let (forced, closing) = signals.look(cx);
                if forced {
                    return Poll::Ready(Woke::Forced);
                }
                if let Poll::Ready(r) = poll_more(&mut io, cx, &mut rbuf, &mut wbuf) {
                    return Poll::Ready(Woke::Read(r));
                }
                // Lazily armed: it fires at most once per PARK_AFTER on a
                // busy connection, never per request.
                if clock.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Woke::Clock);
                }
                if closing {
                    return Poll::Ready(Woke::Closing);
                }
                Poll::Pending
            })
            .await;
            match woke {
                Woke::Forced => return End::Closed,
                Woke::Read(r) => match r {
                    Ok(0) => eof = true,
                    Ok(_) => parked = None,
                    Err(_) => return End::Closed,
                },
                Woke::Clock => {
                    let now = Instant::now();
                    if now >= deadline {
                        if !rbuf.is_empty() {
                            return refuse(io, wbuf, TIMEOUT).await;
                        }
                        if T::SHUTS_DOWN_WHEN_IDLE {
                            let _ = tokio::time::timeout(IDLE_CLOSE_LIMIT, io.shutdown()).await;
                        }
                        return End::Closed;
                    }
                    let mut next = deadline;
                    if parked.is_none() && T::PARKS && rbuf.is_empty() {
                        if now >= idle_since + PARK_AFTER {
                            Stats::inc(&env.stats.connections_idle);
                            crate::proto::trim::note_park();
                            parked = Some(Parked(&env.stats));
                            slot = None;
                        } else {
                            next = idle_since + PARK_AFTER;
                        }
                    }
                    clock.as_mut().reset(next);
                }
                Woke::Closing => {}
            }
        };
        drop(parked);

        // --- Hand the request to the dispatcher. ---
        let facts = ReqFacts::new(
            head.version,
            &head.method,
            head.keep_alive && cfg.keep_alive,
        );
        let (req_body, mut pump) = match head.body {
            None => (ReqBody::Empty, Pump::None),
            // A body already read whole is passed as one piece.
            Some(Decoder::Length(n)) if n <= rbuf.len() as u64 && !head.expect_continue => (
                ReqBody::Full(Some(rbuf.split_to(n as usize).freeze())),
                Pump::None,
            ),
            Some(dec) => {
                let (b, tx, want) = body::streamed(dec.exact_left());
                let cont = head.expect_continue;
                (
                    b,
                    Pump::Active {
                        dec,
                        tx,
                        want,
                        cont,
                    },
                )
            }
        };
        // Offered for a direct answer only when this loop has nothing of
        // its own to write before it: no earlier answer, no `100 Continue`,
        // no body to read, no pipelined request behind it. A HEAD or
        // HTTP/1.0 request or a closing one is framed here.
        let offered = match &direct {
            Some(d)
                if wbuf.is_empty()
                    && rbuf.is_empty()
                    && matches!(pump, Pump::None)
                    && !facts.head
                    && facts.version == http::Version::HTTP_11
                    && facts.keep_alive =>
            {
                d.0.offer();
                Some(&d.0)
            }
            _ => None,
        };
        if offered.is_some() {
            // The clock (see the flight below) must look within PARK_AFTER;
            // after a park it was set to the far idle deadline.
            let check = Instant::now() + PARK_AFTER;
            if clock.deadline() > check {
                clock.as_mut().reset(check);
            }
        }
        let mut req = Request::new(req_body);
        *req.method_mut() = head.method;
        *req.uri_mut() = head.uri;
        *req.version_mut() = head.version;
        // The fields stay the head's bytes: the dispatcher builds a
        // `HeaderMap` only for a request that reads one (`dispatch::head`).
        let fut = env.dispatch.call_h1(info.clone(), req, head.raw);
        let fut = match &mut slot {
            Some(s) => {
                Pin::set(s, Some(fut));
                s
            }
            None => slot.insert(Box::pin(Some(fut))),
        };

        // Armed for a direct answer, the request's `requestTimeout` is kept
        // here (`embedder::direct`): read at the clock's looks, which are
        // pulled to it only when it comes before the next (no timer per
        // request; the dispatcher's future holds none either).
        let mut deadline: Option<Instant> = None;
        let mut first = true;
        let flight = poll_fn(|cx| {
            let (forced, closing) = signals.look(cx);
            if forced {
                return Poll::Ready(Flight::Forced);
            }
            // Woken after a direct answer (by the client's next request,
            // mostly): one load, and the dispatcher's future is not polled
            // again, only dropped (its second poll cost ~0.1 µs).
            if !first && offered.is_some_and(|d| d.is_answered()) {
                return Poll::Ready(Flight::Direct);
            }
            first = false;
            if let Some(f) = fut.as_mut().as_pin_mut() {
                if let Poll::Ready(Ok(res)) = f.poll(cx) {
                    return Poll::Ready(Flight::Done(res));
                }
            }
            loop {
                // Earlier answers (and a 100 Continue) leave while we wait.
                while !wbuf.is_empty() {
                    match poll_write_buf(Pin::new(&mut io), cx, &mut wbuf) {
                        Poll::Ready(Ok(n)) if n > 0 => {}
                        Poll::Ready(_) => return Poll::Ready(Flight::Gone),
                        Poll::Pending => break,
                    }
                }
                if let Pump::Active {
                    dec,
                    tx,
                    want,
                    cont,
                } = &mut pump
                {
                    if tx.is_closed() {
                        pump = match std::mem::replace(&mut pump, Pump::None) {
                            Pump::Active { dec, .. } => Pump::Abandoned(dec),
                            p => p,
                        };
                        continue;
                    }
                    if tx.capacity() == 0 || !want.poll_wanted(cx) {
                        break;
                    }
                    if std::mem::take(cont) {
                        wbuf.extend_from_slice(CONTINUE);
                        continue;
                    }
                    match dec.decode(&mut rbuf) {
                        Ok(Decoded::Data(b)) => {
                            want.served();
                            let _ = tx.try_send(Ok(b));
                            if dec.is_done() {
                                pump = Pump::None;
                            }
                            continue;
                        }
                        Ok(Decoded::Done) => {
                            pump = Pump::None;
                            continue;
                        }
                        Ok(Decoded::NeedMore) if !eof => {
                            reserve(&mut rbuf);
                            match poll_read_buf(Pin::new(&mut io), cx, &mut rbuf) {
                                Poll::Ready(Ok(0)) => eof = true,
                                Poll::Ready(Ok(_)) => {}
                                Poll::Ready(Err(_)) => {
                                    // The error stays queued for the handler's
                                    // stream; dropping the request fires its abort.
                                    let _ = tx.try_send(Err(BodyError("connection reset")));
                                    return Poll::Ready(Flight::Gone);
                                }
                                Poll::Pending => break,
                            }
                            continue;
                        }
                        Ok(Decoded::NeedMore) => {
                            // The client ended its side mid-body: the request
                            // can never be whole, so (as with hyper) it is
                            // dropped, which fires its abort, not answered.
                            let _ = tx.try_send(Err(BodyError("body cut short")));
                            return Poll::Ready(Flight::Gone);
                        }
                        Err(e) => {
                            let _ = tx.try_send(Err(BodyError(e.0)));
                            pump = Pump::Broken;
                            continue;
                        }
                    }
                }
                // Nothing to read for the request: watch for a reset.
                // (On a socket whose readiness is spent this is no syscall;
                // otherwise it is the EAGAIN read hyper makes after each
                // response anyway, made earlier.) As between requests, the
                // wait holds no read buffer: with a JS handler it lasts a
                // crossing, and with 64 connections in flight a per-thread
                // pool of 16 ran dry, so that every request paid a fresh
                // 8 KiB malloc and a free (~0.6 µs, docs/performance.md §14).
                if matches!(pump, Pump::None | Pump::Abandoned(_)) && !eof && rbuf.len() < max_head
                {
                    match poll_more(&mut io, cx, &mut rbuf, &mut wbuf) {
                        Poll::Ready(Ok(0)) => eof = true,
                        Poll::Ready(Ok(_)) => continue,
                        Poll::Ready(Err(_)) => return Poll::Ready(Flight::Gone),
                        Poll::Pending => {}
                    }
                }
                break;
            }
            if let Some(d) = offered {
                // A shutdown must wake this task if the answer is written
                // directly, as must input waiting behind it.
                match d.answered(cx, closing || eof || !rbuf.is_empty()) {
                    Look::Answered => return Poll::Ready(Flight::Direct),
                    Look::Armed(at) if deadline.is_none() => {
                        deadline = Some(at);
                        // Only a `requestTimeout` under PARK_AFTER moves the
                        // clock here (a timer operation); otherwise a look
                        // near the deadline sets it (below).
                        if clock.deadline() > at {
                            clock.as_mut().reset(at);
                        }
                    }
                    _ => {}
                }
                // Nobody wakes this task for an answer written whole, so
                // it looks every PARK_AFTER (the clock it already has): the
                // keep-alive timeout and parking then count from the
                // answer, as after one written here.
                while clock.as_mut().poll(cx).is_ready() {
                    let now = Instant::now();
                    if deadline.is_some_and(|at| now >= at) {
                        return Poll::Ready(Flight::TimedOut);
                    }
                    let next = now + PARK_AFTER;
                    clock
                        .as_mut()
                        .reset(deadline.map_or(next, |at| next.min(at)));
                }
                // Waiting for the client's next request, this connection
                // holds no buffer (as between requests).
                if rbuf.is_empty() && wbuf.is_empty() {
                    release(&mut rbuf);
                    release(&mut wbuf);
                }
            }
            Poll::Pending
        })
        .await;
        let timed_out = matches!(flight, Flight::TimedOut);
        let res = match flight {
            Flight::Done(res) => Some(res),
            Flight::Direct | Flight::TimedOut => None,
            Flight::Gone | Flight::Forced => return End::Closed,
        };
        // Take the slot back before writing: an answer written directly
        // wins over the dispatcher's (a timeout's 503 that raced it).
        let res = match (offered.map_or(Taken::No, |d| d.take()), res) {
            (Taken::No, Some(res)) => res,
            (Taken::No, None) if timed_out => {
                // Dropping the request's future tells a `request.signal`
                // watcher (the core answered for the handler) and leaves
                // its responder abandoned, as the dispatcher's own timeout.
                fut.set(None);
                env.dispatch.timed_out()
            }
            // Not reached: `Direct` means the slot held an answer.
            (Taken::No, None) => return End::Closed,
            (Taken::Done(at), _) => {
                fut.set(None);
                answered_at = Some(at);
                continue 'requests;
            }
            (Taken::Rest(rest), _) => {
                fut.set(None);
                wbuf.extend_from_slice(&rest);
                // Over TLS records may wait in the session: `flush` sends them.
                if flush(&mut io, &mut wbuf).await.is_err() || io.flush().await.is_err() {
                    return End::Closed;
                }
                continue 'requests;
            }
        };
        fut.set(None);

        // --- Write the response. ---
        // A body left unread is skipped if it is already here; otherwise
        // the connection cannot be reused.
        let body_done = match pump {
            Pump::None => true,
            Pump::Active { mut dec, .. } | Pump::Abandoned(mut dec) => {
                dec.skip_buffered(&mut rbuf).unwrap_or(false)
            }
            Pump::Broken => false,
        };
        let mut facts = facts;
        facts.keep_alive &= body_done && !env.life.shutdown.is_cancelled();
        let (parts, res_body) = res.into_parts();
        let exact = res_body.size_hint().exact();
        // The write buffer was given back while the request waited: take
        // one from the pool rather than grow an empty one field by field.
        reserve(&mut wbuf);
        let (framing, keep_alive) =
            encode::head(&mut wbuf, &facts, parts.status, &parts.headers, exact);
        drop(parts);
        let wrote = tokio::select! {
            biased;
            _ = poll_fn(|cx| signals.poll_forced(cx)) => return End::Closed,
            r = write_body(&mut io, &mut wbuf, res_body, framing) => r,
        };
        if wrote.is_err() {
            return End::Closed;
        }
        if !keep_alive {
            close(&mut io, &mut wbuf).await;
            return End::Closed;
        }
        // Coalescing: with more input already buffered (a pipelined
        // request), the answer waits for the next one's, up to WRITE_HIGH.
        if (rbuf.is_empty() || wbuf.len() >= WRITE_HIGH) && flush(&mut io, &mut wbuf).await.is_err()
        {
            return End::Closed;
        }
        continue 'requests;
    }
}

/// Reads more input. On a transport that can wait for readiness, a
/// connection with nothing buffered gives its buffers back first.
fn poll_more<T: Transport>(
    io: &mut T,
    cx: &mut std::task::Context<'_>,
    rbuf: &mut BytesMut,
    wbuf: &mut BytesMut,
) -> Poll<io::Result<usize>> {
    if T::PARKS && rbuf.is_empty() && io.poll_input(cx)?.is_pending() {
        release(rbuf);
        release(wbuf);
        return Poll::Pending;
    }
    reserve(rbuf);
    let r = poll_read_buf(Pin::new(io), cx, rbuf);
    if r.is_pending() && T::PARKS && rbuf.is_empty() {
        release(rbuf);
        release(wbuf);
    }
    r
}

async fn flush<T: Transport>(io: &mut T, wbuf: &mut BytesMut) -> io::Result<()> {
    if wbuf.is_empty() {
        return Ok(());
    }
    io.write_all(wbuf).await?;
    wbuf.clear();
    // A buffer grown by a large answer is not kept for the next small one
    // (it would stay with an idle TLS connection).
    if wbuf.capacity() > MAX_KEPT {
        *wbuf = BytesMut::new();
    }
    Ok(())
}

/// Writes what is left and closes. Over TLS the last bytes and the
/// close_notify alert are queued together (`Transport::queue_last`) and
/// leave in one write instead of one each.
async fn close<T: Transport>(io: &mut T, wbuf: &mut BytesMut) {
    let taken = io.queue_last(wbuf);
    wbuf.advance(taken);
    if flush(io, wbuf).await.is_ok() {
        let _ = io.shutdown().await;
    }
}

/// Writes a fixed answer and closes.
async fn refuse<T: Transport>(mut io: T, mut wbuf: BytesMut, answer: &[u8]) -> End<T> {
    wbuf.extend_from_slice(answer);
    close(&mut io, &mut wbuf).await;
    End::Closed
}

/// Writes `data` after what `wbuf` holds: copied behind it when small,
/// else in one vectored write of both (the body is never copied).
async fn put<T: Transport>(io: &mut T, wbuf: &mut BytesMut, mut data: Bytes) -> io::Result<()> {
    if data.len() <= COPY_MAX {
        wbuf.extend_from_slice(&data);
        return Ok(());
    }
    while !wbuf.is_empty() || !data.is_empty() {
        let n = if wbuf.is_empty() {
            io.write(&data).await?
        } else {
            let bufs = [io::IoSlice::new(wbuf), io::IoSlice::new(&data)];
            io.write_vectored(&bufs).await?
        };
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let from_head = n.min(wbuf.len());
        wbuf.advance(from_head);
        data.advance(n - from_head);
    }
    wbuf.clear();
    Ok(())
}

/// Writes the response body with its framing. An error (the producer
/// failed, the body is shorter or longer than announced, the socket
/// broke) ends the connection without a clean end of body, so the client
/// cannot take a truncated body for a whole one.
async fn write_body<T: Transport>(
    io: &mut T,
    wbuf: &mut BytesMut,
    mut body: ResBody,
    framing: Framing,
) -> io::Result<()> {
    if framing == Framing::None {
        return Ok(());
    }
    // The common case: a whole body, behind its head.
    if let ResBody::Full(b) = &mut body {
        if let Some(data) = b.take() {
            if framing == Framing::Length(data.len() as u64) {
                return put(io, wbuf, data).await;
            }
            b.replace(data);
        }
    }
    let mut written: u64 = 0;
    loop {
        // Write what is pending only if the next piece is not ready yet.
        let frame = match futures_util::FutureExt::now_or_never(body.frame()) {
            Some(f) => f,
            None => {
                flush(io, wbuf).await?;
                body.frame().await
            }
        };
        let data = match frame {
            None => break,
            Some(Err(_)) => return Err(io::Error::other("the response body failed")),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(d) if !d.is_empty() => d,
                _ => continue,
            },
        };
        written += data.len() as u64;
        match framing {
            Framing::Length(n) if written > n => {
                return Err(io::Error::other(
                    "the response body is longer than announced",
                ));
            }
            Framing::Chunked => {
                encode::chunk_start(wbuf, data.len());
                put(io, wbuf, data).await?;
                wbuf.extend_from_slice(encode::CHUNK_END);
            }
            _ => put(io, wbuf, data).await?,
        }
        if wbuf.len() >= WRITE_HIGH {
            flush(io, wbuf).await?;
        }
    }
    match framing {
        Framing::Chunked => wbuf.extend_from_slice(encode::LAST_CHUNK),
        Framing::Length(n) if written != n => {
            return Err(io::Error::other(
                "the response body is shorter than announced",
            ));
        }
        _ => {}
    }
    Ok(())
}
