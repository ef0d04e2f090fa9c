//! App connections over io_uring (`muon up --io-uring`): one tokio-uring runtime per worker
//! thread, HTTP/1.1 and HTTP/2 with prior knowledge (h2c).
//!
//! Why: under load, what costs most besides the guest is waking the client once per answer (each
//! `writev` of an answer wakes it, and on a VM that is an IPI or a preemption). tokio-uring
//! submits the operations a worker queued during one turn of its scheduler together, when the
//! worker parks, so the answers of a batch of requests leave in one system call.
//!
//! Where the kernel allows it (Linux 6.0 and later), a worker's ring is cooperative: a client's
//! request completes the worker's receive at the worker's next system call instead of
//! interrupting it, and only the worker's thread submits (`COOP_TASKRUN`, `SINGLE_ISSUER`).
//!
//! Writes are write-behind: `poll_write` copies the bytes, queues the send and returns at once;
//! `poll_flush` (which hyper calls after every response) waits for it. An operation that is
//! dropped in flight keeps its buffer and its socket open until the kernel is done with it
//! (tokio-uring's `SharedFd`), so a reused file descriptor never receives another connection's
//! bytes.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, ready};

use hyper_util::server::graceful::Watcher;

use crate::State;

type Op = Pin<Box<dyn Future<Output = (io::Result<usize>, Vec<u8>)>>>;

/// What a worker is handed: an accepted connection, the server state and its shutdown watcher.
type Handoff = (std::net::TcpStream, State, Watcher);

/// Whether this kernel lets us set up an io_uring (it can be disabled by sysctl or seccomp), and
/// whether it takes `cooperative()`'s flags (Linux 6.0 and later).
pub(crate) fn available() -> io::Result<bool> {
    if cooperative().build(8).is_ok() {
        return Ok(true);
    }
    io_uring::IoUring::new(8).map(|_| false)
}

/// A worker's ring, where the kernel allows it: a completion waits for the worker's next system
/// call instead of interrupting it (`COOP_TASKRUN`: no inter-processor interrupt from the
/// client's send, which on a VM is an exit to the hypervisor), and only the worker's thread
/// submits (`SINGLE_ISSUER`).
fn cooperative() -> io_uring::Builder {
    let mut setup = io_uring::IoUring::builder();
    setup.setup_coop_taskrun().setup_single_issuer();
    setup
}

fn runtime(cooperative_ring: bool) -> tokio_uring::Builder {
    let mut builder = tokio_uring::builder();
    if cooperative_ring {
        builder.uring_builder(&cooperative());
    }
    builder
}

/// Threads each running a tokio-uring runtime; they stop when this is dropped.
pub(crate) struct Workers {
    senders: Vec<tokio::sync::mpsc::UnboundedSender<Handoff>>,
}

impl Workers {
    pub(crate) fn start(count: usize, cooperative: bool) -> io::Result<Self> {
        let mut senders = Vec::with_capacity(count);
        for i in 0..count {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Handoff>();
            senders.push(tx);
            std::thread::Builder::new()
                .name(format!("muon-gateway-{i}"))
                .spawn(move || {
                    runtime(cooperative).start(async move {
                        while let Some((stream, state, watcher)) = rx.recv().await {
                            tokio_uring::spawn(serve(stream, state, watcher));
                        }
                    })
                })?;
        }
        Ok(Self { senders })
    }

    pub(crate) fn spawn(
        &self,
        n: usize,
        stream: std::net::TcpStream,
        state: State,
        watcher: Watcher,
    ) {
        let _ = self.senders[n % self.senders.len()].send((stream, state, watcher));
    }
}

async fn serve(stream: std::net::TcpStream, state: State, watcher: Watcher) {
    // io_uring waits for the socket itself; a non-blocking one would only answer EAGAIN.
    if let Err(e) = stream.set_nonblocking(false) {
        tracing::warn!("cannot hand a connection to io_uring: {e}");
        return;
    }
    let io = Io::new(tokio_uring::net::TcpStream::from_std(stream));
    // HTTP/1.1 and HTTP/2 with prior knowledge, as on epoll workers; no upgrades, since an
    // upgraded connection must be able to move between threads and this one cannot.
    let builder = hyper_util::server::conn::auto::Builder::new(Local);
    let connection = builder.serve_connection(io, crate::gateway::service(state));
    if let Err(e) = watcher.watch(connection.into_owned()).await {
        tracing::debug!("connection ended with an error: {e}");
    }
}

/// Runs HTTP/2 streams as tasks of the worker that holds their connection.
#[derive(Clone, Copy)]
struct Local;

impl<F: Future + 'static> hyper::rt::Executor<F> for Local {
    fn execute(&self, future: F) {
        tokio::task::spawn_local(future);
    }
}

/// hyper's IO traits over a tokio-uring socket.
struct Io {
    stream: Rc<tokio_uring::net::TcpStream>,
    reading: Option<Op>,
    /// The last read's bytes, of which `at..` are not handed to hyper yet.
    read: Vec<u8>,
    at: usize,
    /// The send in flight and how many bytes it was asked to send.
    writing: Option<(Op, usize)>,
    /// A send buffer to reuse.
    spare: Vec<u8>,
}

/// How much one read asks for.
const READ_SIZE: usize = 16 * 1024;

impl Io {
    fn new(stream: tokio_uring::net::TcpStream) -> Self {
        Self {
            stream: Rc::new(stream),
            reading: None,
            read: Vec::new(),
            at: 0,
            writing: None,
            spare: Vec::new(),
        }
    }

    fn send(&mut self, buf: Vec<u8>) {
        let len = buf.len();
        let stream = self.stream.clone();
        self.writing = Some((
            Box::pin(async move { stream.write(buf).submit().await }),
            len,
        ));
    }

    /// Wait for the send in flight, sending again what a short send left.
    fn poll_sent(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((op, len)) = self.writing.as_mut() {
            let len = *len;
            let (result, mut buf) = ready!(op.as_mut().poll(cx));
            self.writing = None;
            match result? {
                0 => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                n if n < len => {
                    buf.drain(..n);
                    self.send(buf);
                }
                _ => {
                    buf.clear();
                    self.spare = buf;
                }
            }
        }
        Poll::Ready(Ok(()))
    }

    fn queue(&mut self, cx: &mut Context<'_>, parts: &[&[u8]]) -> Poll<io::Result<usize>> {
        ready!(self.poll_sent(cx))?;
        let mut buf = std::mem::take(&mut self.spare);
        for part in parts {
            buf.extend_from_slice(part);
        }
        let len = buf.len();
        self.send(buf);
        Poll::Ready(Ok(len))
    }
}

impl hyper::rt::Read for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut dst: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.at >= this.read.len() {
            let op = this.reading.get_or_insert_with(|| {
                let stream = this.stream.clone();
                let mut buf = std::mem::take(&mut this.read);
                buf.clear();
                buf.reserve(READ_SIZE);
                Box::pin(async move { stream.read(buf).await })
            });
            let (result, buf) = ready!(op.as_mut().poll(cx));
            this.reading = None;
            this.read = buf;
            this.at = 0;
            result?;
        }
        // An empty read (the peer closed) hands hyper nothing, which is how it learns of the end.
        let available = &this.read[this.at..];
        let n = available.len().min(dst.remaining());
        dst.put_slice(&available[..n]);
        this.at += n;
        Poll::Ready(Ok(()))
    }
}

impl hyper::rt::Write for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().queue(cx, &[data])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let parts: Vec<&[u8]> = bufs.iter().map(|b| &**b).collect();
        self.get_mut().queue(cx, &parts)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_sent(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_sent(cx))?;
        Poll::Ready(this.stream.shutdown(std::net::Shutdown::Write))
    }
}
