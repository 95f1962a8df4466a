//! Runs the file side of a channel: SFTP or legacy SCP, confined to the home.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use std::collections::VecDeque;

use bytes::{Buf as _, Bytes, BytesMut};
use russh::server::Msg;
use russh::{Channel, ChannelMsg, ChannelReadHalf, ChannelStream, ChannelWriteHalf};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use super::handler::FilesKind;
use crate::auth::Auth;
use crate::auth::flow::Session;
use crate::files::budget;

/// The channel's stream, lent to a file server. Dropping a russh stream
/// closes the channel; a lent stream instead goes back to its owner, who
/// sends the exit status first and closes after (otherwise the close can
/// overtake the status and `scp` reports a failure for a complete copy).
struct Lent {
    stream: Option<ChannelStream<Msg>>,
    back: Option<oneshot::Sender<ChannelStream<Msg>>>,
}

impl Drop for Lent {
    fn drop(&mut self) {
        if let (Some(stream), Some(back)) = (self.stream.take(), self.back.take()) {
            let _ = back.send(stream);
        }
    }
}

fn gone() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::BrokenPipe, "channel returned")
}

impl AsyncRead for Lent {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.stream.as_mut() {
            Some(s) => Pin::new(s).poll_read(cx, buf),
            None => Poll::Ready(Err(gone())),
        }
    }
}

impl AsyncWrite for Lent {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.stream.as_mut() {
            Some(s) => Pin::new(s).poll_write(cx, buf),
            None => Poll::Ready(Err(gone())),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.stream.as_mut() {
            Some(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            None => Poll::Ready(Err(gone())),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.stream
            .as_ref()
            .is_some_and(AsyncWrite::is_write_vectored)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.stream.as_mut() {
            Some(s) => Pin::new(s).poll_flush(cx),
            None => Poll::Ready(Err(gone())),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.stream.as_mut() {
            Some(s) => Pin::new(s).poll_flush(cx),
            None => Poll::Ready(Ok(())),
        }
    }
}

/// Most bytes of requests taken off a channel ahead of the SFTP server.
const BACKLOG_BYTES: u32 = 16 * 1024 * 1024;

/// A channel's data, taken off the channel by a task of its own as soon as
/// it arrives, up to [`BACKLOG_BYTES`] ahead of the reader and within its
/// account's part of the process's intake pool ([`budget::Purse`]).
///
/// russh hands each data packet to its channel through a bounded queue and,
/// while that queue is full, waits with the whole connection: replies sent
/// meanwhile wait too. A file server that stops reading requests until its
/// replies are out would then wait forever on a client that sends more
/// requests than the server works on at once (paramiko sends every READ of a
/// download up front, and pipelines a put without waiting for the
/// acknowledgements). Taking the requests off the channel keeps the
/// connection moving; the bound keeps a client that never reads its replies
/// from growing the backlog without end.
///
/// Data read by the server keeps its shares while the server still holds
/// it as an unfinished packet ([`crate::files::sftp::Requests`]).
/// A share of the channel's backlog and of the account's part of the
/// intake pool.
type Shares = (OwnedSemaphorePermit, budget::Grant);

struct Drained {
    rx: mpsc::UnboundedReceiver<(Bytes, Shares)>,
    /// The data being read, and its share of the backlog and of the pool.
    current: Option<(Bytes, Shares)>,
    /// Data read whole, oldest first, with their lengths: the server may
    /// still hold them.
    held: VecDeque<(usize, Shares)>,
    held_bytes: usize,
}

impl Drained {
    fn new(mut half: ChannelReadHalf, purse: Arc<budget::Purse>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let backlog = Arc::new(Semaphore::new(BACKLOG_BYTES as usize));
        tokio::spawn(async move {
            while let Some(msg) = half.wait().await {
                match msg {
                    ChannelMsg::Data { data } => {
                        let n = u32::try_from(data.len())
                            .unwrap_or(u32::MAX)
                            .min(BACKLOG_BYTES);
                        let Ok(share) = backlog.clone().acquire_many_owned(n).await else {
                            break;
                        };
                        // And its share of the account's part of the pool.
                        let Some(pooled) = purse.take(budget::Pool::Intake, data.len()).await
                        else {
                            break;
                        };
                        if tx.send((data, (share, pooled))).is_err() {
                            break;
                        }
                    }
                    ChannelMsg::Eof | ChannelMsg::Close => break,
                    _ => {}
                }
            }
        });
        Drained {
            rx,
            current: None,
            held: VecDeque::new(),
            held_bytes: 0,
        }
    }
}

impl crate::files::sftp::Requests for Drained {
    fn retain(&mut self, n: usize) {
        // The oldest data read whole go while the rest covers `n` bytes.
        while let Some(&(len, _)) = self.held.front() {
            if self.held_bytes - len < n {
                break;
            }
            self.held_bytes -= len;
            self.held.pop_front();
        }
    }
}

impl AsyncRead for Drained {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        // Everything that is there, up to the room in `buf`: the server
        // gathers the requests of one read into one batch of work.
        let mut copied = false;
        while buf.remaining() > 0 {
            if let Some((data, _)) = self.current.as_mut()
                && !data.is_empty()
            {
                let n = data.len().min(buf.remaining());
                buf.put_slice(data.get(..n).unwrap_or_default());
                data.advance(n);
                copied = true;
                continue;
            }
            // Read whole: its shares wait until the server lets them go.
            if let Some((_, shares)) = self.current.take() {
                // The data's length, as counted by its backlog share.
                let len = shares.0.num_permits();
                self.held_bytes += len;
                self.held.push_back((len, shares));
            }
            let next = if copied {
                match self.rx.try_recv() {
                    Ok(next) => Some(next),
                    Err(_) => break,
                }
            } else {
                // Nothing yet: wait for data, or the end of the channel's data.
                std::task::ready!(self.rx.poll_recv(cx))
            };
            match next {
                Some(next) => self.current = Some(next),
                None => break,
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// Cuts SFTP replies into SSH packets of the client's largest size without
/// copying the data: a reply larger than a packet goes out as slices of
/// itself, and only the ends of replies that share a packet are gathered
/// (OpenSSH's client takes 32 KiB packets, so a 64 KiB DATA reply with its
/// 13-byte header fills two packets, not three). What is gathered goes out
/// at the end of each batch of ready replies: nothing waits for more.
struct Packer {
    /// Bytes per packet.
    packet: usize,
    /// The ends of replies gathered for the next packet.
    gathered: BytesMut,
}

impl Packer {
    fn new(packet: usize) -> Self {
        Packer {
            packet: packet.max(1),
            gathered: BytesMut::new(),
        }
    }

    fn gather(&mut self, data: &[u8]) {
        if self.gathered.capacity() == 0 {
            self.gathered.reserve(self.packet);
        }
        self.gathered.extend_from_slice(data);
    }

    /// The packets for a batch of replies, in order; empties `frames`.
    fn pack(&mut self, frames: &mut VecDeque<Bytes>) -> Vec<Bytes> {
        let mut out = Vec::new();
        while let Some(mut frame) = frames.pop_front() {
            if !self.gathered.is_empty() {
                let room = self.packet.saturating_sub(self.gathered.len());
                let head = frame.split_to(room.min(frame.len()));
                self.gather(&head);
                if self.gathered.len() < self.packet {
                    continue;
                }
                out.push(self.gathered.split().freeze());
            }
            while frame.len() >= self.packet {
                out.push(frame.split_to(self.packet));
            }
            if frame.is_empty() {
                continue;
            }
            if frames.is_empty() {
                out.push(frame);
            } else {
                self.gather(&frame);
            }
        }
        if !self.gathered.is_empty() {
            out.push(self.gathered.split().freeze());
        }
        out
    }
}

/// SFTP replies sent on the channel, packed by [`Packer`].
struct ChannelReplies {
    half: ChannelWriteHalf<Msg>,
    packer: Packer,
}

impl ChannelReplies {
    async fn new(half: ChannelWriteHalf<Msg>) -> Self {
        // The client's packet size (its window is larger at the start).
        let packet = half.writable_packet_size().await.clamp(1024, 256 * 1024);
        ChannelReplies {
            half,
            packer: Packer::new(packet),
        }
    }
}

impl crate::files::sftp::Replies for ChannelReplies {
    async fn send(&mut self, frames: &mut VecDeque<Bytes>) -> std::io::Result<()> {
        for data in self.packer.pack(frames) {
            self.half.data_bytes(data).await.map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::BrokenPipe, "channel closed")
            })?;
        }
        Ok(())
    }

    async fn finish(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Serves one file channel to the end. Returns the exit status to report and
/// the channel's stream, to be dropped (closing the channel) only after the
/// status went out.
pub(super) async fn run(
    channel: Channel<Msg>,
    kind: FilesKind,
    login: &Session,
    auth: Arc<Auth>,
) -> (u32, Option<ChannelStream<Msg>>) {
    let session = login.clone();
    let root = match tokio::task::spawn_blocking(move || auth.open_home(&session)).await {
        Ok(Ok(root)) => Arc::new(root),
        Ok(Err(e)) => {
            tracing::error!(account = %login.account, error = %e, "cannot open the home folder");
            // The client sees why on the channel's standard error.
            let text = Bytes::from(format!("{e}\r\n"));
            let _ = channel.extended_data_bytes(1, text).await;
            return (1, None);
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot open the home folder");
            return (1, None);
        }
    };
    let command = match kind {
        FilesKind::Sftp => {
            // The halves of a channel do not close it when dropped: the
            // caller sends the exit status first.
            let (requests, half) = channel.split();
            let replies = ChannelReplies::new(half).await;
            let limits = crate::files::sftp::SftpLimits::default();
            let served = {
                let purse = budget::Purse::of(&login.account);
                let requests = Drained::new(requests, purse.clone());
                crate::files::sftp::serve_with(requests, replies, root, limits, purse).await
            };
            let code = match served {
                Ok(summary) => {
                    tracing::info!(account = %login.account, ?summary, "sftp session");
                    0
                }
                Err(e) => {
                    tracing::warn!(account = %login.account, error = %e, "sftp session failed");
                    1
                }
            };
            return (code, None);
        }
        FilesKind::Scp(command) => command,
    };
    let (back, returned) = oneshot::channel();
    let stream = Lent {
        stream: Some(channel.into_stream()),
        back: Some(back),
    };
    let code = match crate::files::scp::serve_scp(&command, stream, root).await {
        Ok(summary) => {
            tracing::info!(account = %login.account, ?summary, "scp session");
            // Like OpenSSH's scp: a file that could not be copied fails the command.
            u32::from(summary.failures > 0)
        }
        Err(e) => {
            tracing::warn!(account = %login.account, error = %e, "scp session failed");
            1
        }
    };
    (code, returned.await.ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(sizes: &[usize], start: u8) -> (VecDeque<Bytes>, Vec<u8>) {
        let mut all = Vec::new();
        let mut frames = VecDeque::new();
        let mut byte = start;
        for &n in sizes {
            let frame: Vec<u8> = (0..n)
                .map(|_| {
                    byte = byte.wrapping_add(1);
                    byte
                })
                .collect();
            all.extend_from_slice(&frame);
            frames.push_back(Bytes::from(frame));
        }
        (frames, all)
    }

    #[test]
    fn replies_fill_whole_packets_and_keep_their_bytes() {
        let mut packer = Packer::new(32_768);
        // Three 64 KiB DATA replies (13-byte header each) and a status.
        let (mut frames, all) = batch(&[65_549, 65_549, 65_549, 28], 0);
        let packets = packer.pack(&mut frames);
        assert!(frames.is_empty());
        assert_eq!(packets.concat(), all);
        let (last, full) = packets.split_last().unwrap();
        assert!(
            full.iter().all(|p| p.len() == 32_768),
            "only the last may be short"
        );
        assert_eq!(last.len(), all.len() % 32_768);
        assert_eq!(packets.len(), all.len().div_ceil(32_768));
    }

    #[test]
    fn nothing_waits_for_the_next_batch() {
        let mut packer = Packer::new(1024);
        let (mut frames, first) = batch(&[30, 40], 0);
        assert_eq!(packer.pack(&mut frames).concat(), first);
        let (mut frames, second) = batch(&[5000], 7);
        let packets = packer.pack(&mut frames);
        assert_eq!(packets.concat(), second);
        assert!(packets.iter().all(|p| p.len() <= 1024));
    }
}
