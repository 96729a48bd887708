//! A userspace UDP relay that makes a loopback link behave like a village link (the machine has no
//! netem): a bandwidth cap with a bounded queue, one-way delay, jitter, random loss, duplication,
//! reordering and blackouts (scheduled, or switched by the test). Put it between a node and its
//! upstream by enrolling the node with the proxy's address as upstream.
//!
//! Every decision comes from one seeded RNG per direction, so a run is reproducible up to the timing
//! of the packets themselves. The proxy counts what it was offered, delivered and dropped.

use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How the link misbehaves, the same in both directions.
#[derive(Debug, Clone)]
pub struct LinkProfile {
    /// Bits per second in each direction; `None`: unlimited.
    pub bandwidth_bps: Option<u64>,
    /// Bytes that may wait for the link before the queue drops (a small router's buffer).
    pub queue_bytes: usize,
    /// One-way delay (RTT is twice this).
    pub delay: Duration,
    /// Uniform extra delay in `0..jitter`.
    pub jitter: Duration,
    /// Probability a packet is lost.
    pub loss: f64,
    /// Probability a packet is delivered twice.
    pub duplicate: f64,
    /// Probability a packet is held back by an extra delay and so overtaken by later ones.
    pub reorder: f64,
    /// Scheduled blackouts: every `.0`, the link is down for `.1` (starting one period in).
    pub blackouts: Option<(Duration, Duration)>,
    pub seed: u64,
}

impl Default for LinkProfile {
    fn default() -> LinkProfile {
        LinkProfile {
            bandwidth_bps: None,
            queue_bytes: 64 * 1024,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            blackouts: None,
            seed: 1,
        }
    }
}

/// Counters of one direction.
#[derive(Debug, Default)]
pub struct DirectionStats {
    pub offered_packets: AtomicU64,
    pub offered_bytes: AtomicU64,
    pub delivered_packets: AtomicU64,
    pub delivered_bytes: AtomicU64,
    pub lost: AtomicU64,
    pub blacked_out: AtomicU64,
    pub queue_dropped: AtomicU64,
    pub duplicated: AtomicU64,
    pub reordered: AtomicU64,
}

/// A plain copy of [`DirectionStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub offered_packets: u64,
    pub offered_bytes: u64,
    pub delivered_packets: u64,
    pub delivered_bytes: u64,
    pub lost: u64,
    pub blacked_out: u64,
    pub queue_dropped: u64,
    pub duplicated: u64,
    pub reordered: u64,
}

impl DirectionStats {
    pub fn counts(&self) -> Counts {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Counts {
            offered_packets: g(&self.offered_packets),
            offered_bytes: g(&self.offered_bytes),
            delivered_packets: g(&self.delivered_packets),
            delivered_bytes: g(&self.delivered_bytes),
            lost: g(&self.lost),
            blacked_out: g(&self.blacked_out),
            queue_dropped: g(&self.queue_dropped),
            duplicated: g(&self.duplicated),
            reordered: g(&self.reordered),
        }
    }
}

#[derive(Debug, Default)]
pub struct ProxyStats {
    /// Client (node) towards the target (upstream).
    pub up: DirectionStats,
    /// Target towards the client.
    pub down: DirectionStats,
}

/// A running proxy; stops when dropped.
pub struct FaultProxy {
    pub addr: SocketAddr,
    pub stats: Arc<ProxyStats>,
    down: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// Starts relaying from a fresh port on 127.0.0.1 to `target`. Needs a tokio runtime.
    pub async fn start(target: SocketAddr, profile: LinkProfile) -> std::io::Result<FaultProxy> {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
        let addr = front.local_addr()?;
        let stats = Arc::new(ProxyStats::default());
        let down = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(relay(front, target, profile, stats.clone(), down.clone()));
        Ok(FaultProxy {
            addr,
            stats,
            down,
            task,
        })
    }

    /// Cuts (or restores) the link in both directions, on top of any schedule.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }
}

/// One direction of the link: decides each packet's fate and delivery time, then delivers in time
/// order.
struct Lane {
    profile: LinkProfile,
    rng: StdRng,
    /// When the link finishes sending what is already queued.
    busy_until: Instant,
    started: Instant,
    down: Arc<AtomicBool>,
}

impl Lane {
    fn new(profile: &LinkProfile, seed: u64, down: Arc<AtomicBool>) -> Lane {
        let now = Instant::now();
        Lane {
            profile: profile.clone(),
            rng: StdRng::seed_from_u64(seed),
            busy_until: now,
            started: now,
            down,
        }
    }

    fn blacked_out(&self, now: Instant) -> bool {
        if self.down.load(Ordering::SeqCst) {
            return true;
        }
        match self.profile.blackouts {
            Some((every, length)) if !every.is_zero() => {
                let t = now.duration_since(self.started).as_secs_f64();
                let phase = t % every.as_secs_f64();
                t >= every.as_secs_f64() && phase < length.as_secs_f64()
            }
            _ => false,
        }
    }

    /// The times at which copies of this packet arrive (none: dropped).
    fn admit(&mut self, len: usize, stats: &DirectionStats) -> Vec<Instant> {
        let now = Instant::now();
        stats.offered_packets.fetch_add(1, Ordering::Relaxed);
        stats.offered_bytes.fetch_add(len as u64, Ordering::Relaxed);
        if self.blacked_out(now) {
            stats.blacked_out.fetch_add(1, Ordering::Relaxed);
            return Vec::new();
        }
        if self.rng.gen_bool(self.profile.loss.clamp(0.0, 1.0)) {
            stats.lost.fetch_add(1, Ordering::Relaxed);
            return Vec::new();
        }
        let sent_at = match self.profile.bandwidth_bps {
            Some(bps) if bps > 0 => {
                let start = self.busy_until.max(now);
                let waiting = start.duration_since(now).as_secs_f64() * bps as f64 / 8.0;
                if waiting > self.profile.queue_bytes as f64 {
                    stats.queue_dropped.fetch_add(1, Ordering::Relaxed);
                    return Vec::new();
                }
                self.busy_until = start + Duration::from_secs_f64(len as f64 * 8.0 / bps as f64);
                self.busy_until
            }
            _ => now,
        };
        let mut at = sent_at + self.profile.delay;
        if !self.profile.jitter.is_zero() {
            at += self.profile.jitter.mul_f64(self.rng.gen::<f64>());
        }
        if self.rng.gen_bool(self.profile.reorder.clamp(0.0, 1.0)) {
            stats.reordered.fetch_add(1, Ordering::Relaxed);
            at += self.profile.delay.max(Duration::from_millis(5));
        }
        let mut times = vec![at];
        if self.rng.gen_bool(self.profile.duplicate.clamp(0.0, 1.0)) {
            stats.duplicated.fetch_add(1, Ordering::Relaxed);
            times.push(at + Duration::from_millis(1));
        }
        times
    }
}

/// A packet waiting for its delivery time; the heap pops the earliest (then the first admitted).
struct Due {
    at: Instant,
    seq: u64,
    to: SocketAddr,
    via: Arc<UdpSocket>,
    bytes: Arc<Vec<u8>>,
}

impl PartialEq for Due {
    fn eq(&self, other: &Due) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Due) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    fn cmp(&self, other: &Due) -> std::cmp::Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// Delivers packets of one direction at their times.
async fn deliver(mut rx: mpsc::UnboundedReceiver<Due>, stats: Arc<ProxyStats>, up: bool) {
    let mut heap = BinaryHeap::new();
    loop {
        let next_at = heap.peek().map(|d: &Due| d.at);
        tokio::select! {
            got = rx.recv() => match got {
                Some(d) => heap.push(d),
                None => return,
            },
            _ = async {
                match next_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {
                let now = Instant::now();
                while heap.peek().is_some_and(|d| d.at <= now) {
                    let Some(d) = heap.pop() else { break };
                    if d.via.send_to(&d.bytes, d.to).await.is_ok() {
                        let s = if up { &stats.up } else { &stats.down };
                        s.delivered_packets.fetch_add(1, Ordering::Relaxed);
                        s.delivered_bytes.fetch_add(d.bytes.len() as u64, Ordering::Relaxed);
                    }
                }
            }
        }
    }
}

async fn relay(
    front: Arc<UdpSocket>,
    target: SocketAddr,
    profile: LinkProfile,
    stats: Arc<ProxyStats>,
    down: Arc<AtomicBool>,
) {
    let (up_tx, up_rx) = mpsc::unbounded_channel();
    let (down_tx, down_rx) = mpsc::unbounded_channel();
    tokio::spawn(deliver(up_rx, stats.clone(), true));
    tokio::spawn(deliver(down_rx, stats.clone(), false));
    let up_lane = Arc::new(std::sync::Mutex::new(Lane::new(
        &profile,
        profile.seed,
        down.clone(),
    )));
    let down_lane = Arc::new(std::sync::Mutex::new(Lane::new(
        &profile,
        profile.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 1,
        down,
    )));
    let seq = Arc::new(AtomicU64::new(0));
    // One socket towards the target per client address, as a NAT would.
    let mut flows: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, client)) = front.recv_from(&mut buf).await else {
            return;
        };
        let back = match flows.get(&client) {
            Some(s) => s.clone(),
            None => {
                let Ok(sock) = UdpSocket::bind("127.0.0.1:0").await else {
                    continue;
                };
                let sock = Arc::new(sock);
                flows.insert(client, sock.clone());
                // Replies from the target go back to this client through the down lane.
                let (sock2, front2, lane, tx, stats, seq) = (
                    sock.clone(),
                    front.clone(),
                    down_lane.clone(),
                    down_tx.clone(),
                    stats.clone(),
                    seq.clone(),
                );
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    while let Ok((n, _)) = sock2.recv_from(&mut buf).await {
                        let times = lane
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .admit(n, &stats.down);
                        let bytes = Arc::new(buf[..n].to_vec());
                        for at in times {
                            let _ = tx.send(Due {
                                at,
                                seq: seq.fetch_add(1, Ordering::Relaxed),
                                to: client,
                                via: front2.clone(),
                                bytes: bytes.clone(),
                            });
                        }
                    }
                });
                sock
            }
        };
        let times = up_lane
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .admit(n, &stats.up);
        let bytes = Arc::new(buf[..n].to_vec());
        for at in times {
            let _ = up_tx.send(Due {
                at,
                seq: seq.fetch_add(1, Ordering::Relaxed),
                to: target,
                via: back.clone(),
                bytes: bytes.clone(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server and a client behind the proxy; returns what the client got back.
    async fn echo_through(profile: LinkProfile, packets: u32) -> (Vec<u32>, Counts, Counts) {
        let echo = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let echo_addr = echo.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            while let Ok((n, from)) = echo.recv_from(&mut buf).await {
                let _ = echo.send_to(&buf[..n], from).await;
            }
        });
        let proxy = FaultProxy::start(echo_addr, profile).await.unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        // One packet at a time, each read by the proxy before the next, and echoes read as they come:
        // a burst of a thousand would overflow the sockets' kernel buffers, a loss the proxy did not
        // decide and cannot count.
        let mut got = Vec::new();
        let mut buf = [0u8; 16];
        let drain = |got: &mut Vec<u32>, buf: &mut [u8; 16]| {
            while let Ok((n, _)) = client.try_recv_from(buf) {
                assert_eq!(n, 4, "unexpected datagram");
                got.push(u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]));
            }
        };
        for i in 0..packets {
            client.send_to(&i.to_be_bytes(), proxy.addr).await.unwrap();
            while proxy.stats.up.counts().offered_packets <= u64::from(i) {
                drain(&mut got, &mut buf);
                tokio::task::yield_now().await;
            }
            drain(&mut got, &mut buf);
        }
        // Done when every packet the up lane let through was echoed and every echo the down lane let
        // through has arrived (no blackouts or queue drops in these profiles).
        let settled = |got: usize| {
            let (up, down) = (proxy.stats.up.counts(), proxy.stats.down.counts());
            up.offered_packets == u64::from(packets)
                && up.delivered_packets == up.offered_packets - up.lost + up.duplicated
                && down.offered_packets == up.delivered_packets
                && down.delivered_packets == down.offered_packets - down.lost + down.duplicated
                && got as u64 == down.delivered_packets
        };
        while !settled(got.len()) {
            // The limit only turns a hang into a failure; it does not decide the outcome.
            match tokio::time::timeout(Duration::from_secs(10), client.recv_from(&mut buf)).await {
                Ok(Ok((4, _))) => got.push(u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]])),
                Ok(_) => panic!("unexpected datagram"),
                Err(_) => panic!(
                    "not settled: got {} up {:?} down {:?}",
                    got.len(),
                    proxy.stats.up.counts(),
                    proxy.stats.down.counts()
                ),
            }
        }
        (got, proxy.stats.up.counts(), proxy.stats.down.counts())
    }

    #[tokio::test]
    async fn a_clean_link_delivers_everything_in_order() {
        let (got, up, down) = echo_through(LinkProfile::default(), 200).await;
        assert_eq!(got, (0..200).collect::<Vec<_>>());
        assert_eq!(up.delivered_packets, 200);
        assert_eq!(down.delivered_packets, 200);
    }

    #[tokio::test]
    async fn loss_and_duplication_follow_the_seeded_dice() {
        let profile = LinkProfile {
            loss: 0.3,
            duplicate: 0.2,
            seed: 7,
            ..LinkProfile::default()
        };
        let (got, up, down) = echo_through(profile, 1000).await;
        // Each direction's decisions are counted; what arrives is exactly what both lanes let through.
        assert_eq!(up.lost + up.delivered_packets - up.duplicated, 1000);
        assert!(
            (200..400).contains(&up.lost),
            "30 % of 1000 lost, roughly: {up:?}"
        );
        assert!(up.duplicated > 100, "{up:?}");
        assert_eq!(got.len() as u64, down.delivered_packets);
        assert!(got.len() < 1000, "{}", got.len());
    }

    #[tokio::test]
    async fn a_blackout_drops_everything_until_the_link_returns() {
        let echo = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let target = echo.local_addr().unwrap();
        let proxy = FaultProxy::start(target, LinkProfile::default())
            .await
            .unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        proxy.set_down(true);
        for _ in 0..10 {
            client.send_to(b"lost", proxy.addr).await.unwrap();
        }
        // The relay judges each packet when it reads it: wait until it has read all ten.
        while proxy.stats.up.counts().offered_packets < 10 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        proxy.set_down(false);
        client.send_to(b"kept", proxy.addr).await.unwrap();
        let mut buf = [0u8; 16];
        let (n, _) = echo.recv_from(&mut buf).await.unwrap();
        assert_eq!(
            &buf[..n],
            b"kept",
            "nothing sent during the blackout arrives"
        );
        assert_eq!(proxy.stats.up.counts().blacked_out, 10);
    }

    #[tokio::test]
    async fn reordering_lets_later_packets_overtake() {
        let profile = LinkProfile {
            delay: Duration::from_millis(5),
            reorder: 0.2,
            seed: 3,
            ..LinkProfile::default()
        };
        let (got, up, _) = echo_through(profile, 300).await;
        assert_eq!(got.len(), 300, "nothing lost");
        assert!(up.reordered > 0);
        assert!(
            got.windows(2).any(|w| w[0] > w[1]),
            "some packets arrive out of order"
        );
    }
}
