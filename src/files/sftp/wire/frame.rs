//! The frame reader: whole packets pulled off the stream, oversized ones
//! skipped without being buffered.

use bytes::{Buf as _, Bytes, BytesMut};
use tokio::io::AsyncReadExt as _;

use super::{HARD_PACKET_LIMIT, WireError};

/// A packet off the stream.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    /// A complete packet: its type and body (id included).
    Packet { ty: u8, body: Bytes },
    /// A packet over the negotiated size: skipped, only its type and id kept.
    TooLarge { ty: u8, id: u32 },
}

/// Reads packets from the stream without copying their bodies.
pub(crate) struct FrameReader<R> {
    inner: R,
    buf: BytesMut,
    max_packet: u32,
}

/// How much to ask the stream for at least, per read.
pub(super) const READ_CHUNK: usize = 256 * 1024;

/// The buffer a reader waits with when nothing is pending.
pub(super) const FIRST_READ: usize = 64;

impl<R: super::super::Requests> FrameReader<R> {
    pub(crate) fn new(inner: R, max_packet: u32) -> Self {
        FrameReader {
            inner,
            buf: BytesMut::with_capacity(FIRST_READ),
            max_packet,
        }
    }

    /// Whether a whole packet is buffered (the next call will not wait).
    pub(crate) fn has_frame(&self) -> bool {
        let Some(head) = self.buf.get(..4) else {
            return false;
        };
        let mut len = [0u8; 4];
        len.copy_from_slice(head);
        let len = u32::from_be_bytes(len);
        len <= self.max_packet && self.buf.len() >= 4 + len as usize
    }

    /// The next packet; `None` at a clean end of the stream.
    pub(crate) async fn next(&mut self) -> Result<Option<Frame>, FrameError> {
        loop {
            if let Some(head) = self.buf.get(..4) {
                let len = u32::from_be_bytes([
                    head.first().copied().unwrap_or(0),
                    head.get(1).copied().unwrap_or(0),
                    head.get(2).copied().unwrap_or(0),
                    head.get(3).copied().unwrap_or(0),
                ]);
                if len == 0 {
                    return Err(WireError::Empty.into());
                }
                if len > HARD_PACKET_LIMIT {
                    return Err(WireError::Huge(len).into());
                }
                let total = 4 + len as usize;
                if len > self.max_packet {
                    if self.buf.len() >= 9 {
                        self.buf.advance(4);
                        let ty = self.buf.get_u8();
                        let id = self.buf.get_u32();
                        self.discard(total.saturating_sub(9)).await?;
                        return Ok(Some(Frame::TooLarge { ty, id }));
                    }
                } else if self.buf.len() >= total {
                    let mut frame = self.buf.split_to(total);
                    frame.advance(4);
                    let ty = frame.get_u8();
                    return Ok(Some(Frame::Packet {
                        ty,
                        body: frame.freeze(),
                    }));
                } else {
                    // Make room for the whole packet at once.
                    self.buf.reserve(total - self.buf.len());
                }
            }
            let read = if self.buf.is_empty() {
                self.wait().await?
            } else {
                self.fill().await?
            };
            if read == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(WireError::Eof.into());
            }
        }
    }

    /// Waits for the next packet with a small buffer of its own, so that an
    /// idle session holds none of the large one (the frames already handed
    /// out keep it until they are done). An empty view of the large buffer
    /// would not do: once the frames are gone, growing it takes the whole
    /// buffer back.
    async fn wait(&mut self) -> Result<usize, FrameError> {
        self.inner.retain(0);
        self.buf = BytesMut::with_capacity(FIRST_READ);
        Ok(self.inner.read_buf(&mut self.buf).await?)
    }

    async fn fill(&mut self) -> Result<usize, FrameError> {
        self.inner.retain(self.buf.len());
        if self.buf.capacity() - self.buf.len() < 16 * 1024 {
            self.buf.reserve(READ_CHUNK);
        }
        Ok(self.inner.read_buf(&mut self.buf).await?)
    }

    /// Drops `n` bytes of the stream without keeping them.
    async fn discard(&mut self, mut n: usize) -> Result<(), FrameError> {
        loop {
            if self.buf.len() >= n {
                self.buf.advance(n);
                return Ok(());
            }
            n -= self.buf.len();
            self.buf.clear();
            if self.fill().await? == 0 {
                return Err(WireError::Eof.into());
            }
        }
    }
}

/// Why reading a packet failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Wire(#[from] WireError),
}

#[cfg(test)]
mod tests {
    use super::super::tests::{Rng, packet};
    use super::super::{decode, msg};
    use super::*;

    async fn frames(input: Vec<u8>, max: u32) -> (Vec<Frame>, Option<String>) {
        let mut reader = FrameReader::new(&input[..], max);
        let mut out = Vec::new();
        loop {
            match reader.next().await {
                Ok(Some(f)) => out.push(f),
                Ok(None) => return (out, None),
                Err(e) => return (out, Some(e.to_string())),
            }
        }
    }

    #[tokio::test]
    async fn frames_split_and_oversized_skipped_in_sync() {
        let mut input = packet(msg::STAT, &[0, 0, 0, 1, 0, 0, 0, 1, b'/']);
        // 100 bytes over a 64-byte limit: skipped, the next packet still read.
        let mut big = vec![0, 0, 0, 9];
        big.extend(std::iter::repeat_n(0xaa, 100));
        input.extend(packet(msg::WRITE, &big));
        input.extend(packet(msg::STAT, &[0, 0, 0, 2, 0, 0, 0, 1, b'/']));
        let (f, err) = frames(input, 64).await;
        assert_eq!(err, None);
        assert_eq!(f.len(), 3);
        assert_eq!(
            f[1],
            Frame::TooLarge {
                ty: msg::WRITE,
                id: 9
            }
        );
        assert!(matches!(f[2], Frame::Packet { ty: msg::STAT, .. }));
    }

    /// Hands out `data` a few bytes at a time and records what the reader
    /// says it still holds.
    struct Trickle {
        data: Vec<u8>,
        at: usize,
        retained: Vec<usize>,
    }

    impl tokio::io::AsyncRead for Trickle {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            let at = self.at;
            let n = buf.remaining().min(100).min(self.data.len() - at);
            buf.put_slice(&self.data[at..at + n]);
            self.at += n;
            std::task::Poll::Ready(Ok(()))
        }
    }

    impl super::super::super::Requests for Trickle {
        fn retain(&mut self, n: usize) {
            self.retained.push(n);
        }
    }

    #[tokio::test]
    async fn the_reader_says_how_much_of_an_unfinished_packet_it_holds() {
        // A 1,005-byte WRITE packet, then a short one.
        let mut data = vec![0, 0, 3, 0xe9, msg::WRITE];
        data.extend(std::iter::repeat_n(7, 1000));
        data.extend([0, 0, 0, 5, msg::CLOSE, 0, 0, 0, 1]);
        let trickle = Trickle {
            data,
            at: 0,
            retained: Vec::new(),
        };
        let mut reader = FrameReader::new(trickle, 4096);
        assert!(matches!(
            reader.next().await.unwrap(),
            Some(Frame::Packet { ty: msg::WRITE, .. })
        ));
        let held = reader.inner.retained.clone();
        // It held ever more of the packet while it came, never more than
        // it had been given ...
        assert!(held.windows(2).all(|w| w[0] <= w[1]), "{held:?}");
        assert!(held.iter().any(|&n| n >= 900), "{held:?}");
        assert!(held.iter().all(|&n| n < 1005), "{held:?}");
        // ... and, the packet taken, holds only what follows it.
        assert!(matches!(
            reader.next().await.unwrap(),
            Some(Frame::Packet { ty: msg::CLOSE, .. })
        ));
        assert!(reader.next().await.unwrap().is_none());
        assert_eq!(reader.inner.retained.last(), Some(&0));
    }

    #[tokio::test]
    async fn an_idle_reader_keeps_only_a_small_buffer() {
        use tokio::io::AsyncWriteExt as _;
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let mut reader = FrameReader::new(server, 1 << 20);
        // A large WRITE makes the reader take a large buffer.
        let mut write = vec![0, 0, 0, 3];
        write.extend(std::iter::repeat_n(0x5a, 200_000));
        let is_the_write = |frame: Option<Frame>| match frame {
            Some(Frame::Packet { ty, body }) => {
                assert_eq!((ty, &body[..]), (msg::WRITE, &write[..]))
            }
            other => panic!("{other:?}"),
        };
        client.write_all(&packet(msg::WRITE, &write)).await.unwrap();
        is_the_write(reader.next().await.unwrap());
        // Nothing more has come: waiting for it holds a small buffer only.
        let waited = tokio::time::timeout(std::time::Duration::from_millis(5), reader.next()).await;
        assert!(waited.is_err(), "no request was sent");
        assert!(
            reader.buf.capacity() <= FIRST_READ,
            "{} bytes held while idle",
            reader.buf.capacity()
        );
        // What arrives next is read whole, small or large.
        let stat = packet(msg::STAT, &[0, 0, 0, 4, 0, 0, 0, 1, b'/']);
        client.write_all(&stat).await.unwrap();
        client.write_all(&packet(msg::WRITE, &write)).await.unwrap();
        assert!(matches!(
            reader.next().await.unwrap(),
            Some(Frame::Packet { ty: msg::STAT, .. })
        ));
        is_the_write(reader.next().await.unwrap());
    }

    #[tokio::test]
    async fn bad_lengths_end_the_stream_with_an_error() {
        let (_, err) = frames(vec![0, 0, 0, 0], 1024).await;
        assert_eq!(err.as_deref(), Some("empty packet"));
        let (_, err) = frames(vec![0xff, 0xff, 0xff, 0xff, 1], 1024).await;
        assert!(err.unwrap().contains("64 MiB"));
        let (_, err) = frames(vec![0, 0, 0, 10, 1, 2], 1024).await;
        assert_eq!(err.as_deref(), Some("stream ended inside a packet"));
        // Oversized but truncated while skipping.
        let (_, err) = frames(vec![0, 0, 4, 0, 6, 0, 0, 0, 1, 2, 3], 64).await;
        assert_eq!(err.as_deref(), Some("stream ended inside a packet"));
    }

    #[tokio::test]
    async fn random_streams_never_panic() {
        let mut rng = Rng(42);
        for _ in 0..2_000 {
            let n = (rng.next() % 300) as usize;
            let mut input = rng.bytes(n);
            // Bias towards plausible lengths so bodies get decoded too.
            if input.len() > 4 && rng.next().is_multiple_of(2) {
                let len = (input.len() - 4) as u32;
                input[..4].copy_from_slice(&len.to_be_bytes());
            }
            let (frames, _) = frames(input, 128).await;
            for f in frames {
                if let Frame::Packet { ty, body } = f {
                    let _ = decode(ty, body);
                }
            }
        }
    }
}
