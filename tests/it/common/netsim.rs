//! A userspace network simulator for tests: a UDP proxy on 127.0.0.1 in front of a target
//! (a QUIC server) that impairs each direction on its own: loss, delay with jitter, reordering,
//! duplication, a bandwidth cap with a drop-tail queue, and blackholes switched at runtime.
//!
//! Every decision (lost or not, how much jitter, reordered, duplicated) comes from a PRNG seeded
//! per direction, drawn in the order packets arrive: given the seed and the arrival order, a run
//! repeats. The decisions are made by [`Link`], plain state with no I/O, so they can be checked
//! without sockets; [`NetSim`] feeds it from the sockets and sends each packet at the time it
//! decided.
//!
//! The link model, per direction, in order: a blackhole drops everything; then random loss; then
//! the bottleneck (a packet leaves it `len * 8 / rate` after the previous one, and a packet that
//! finds `queue` packets waiting is dropped, drop-tail); then the propagation delay, `delay` ±
//! `jitter` (uniform). Jitter alone never reorders: a packet is not released before the one in
//! front of it, as on one FIFO path. A packet picked for reordering is held back by
//! `reorder_delay` more, and the packets behind it overtake it. A duplicate is a second copy
//! released with the original.
//!
//! Each client address gets its own socket towards the target, so one proxy serves any number
//! of clients (each connection sees the same impairment, from the same per-direction PRNG).
//! These sockets are connected, so while nothing listens at the target (a relay killed and not
//! yet restarted) Linux reports each packet's ICMP port unreachable on them: counted as
//! `refused`, and the paths stay for when the target is back on the same address.
#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::net::UdpSocket;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Which way a packet travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dir {
    /// From the clients to the target (client to server).
    Up,
    /// From the target back to the clients (server to client).
    Down,
}

impl Dir {
    fn index(self) -> usize {
        match self {
            Dir::Up => 0,
            Dir::Down => 1,
        }
    }
}

/// How one direction is impaired. The default is a perfect link.
#[derive(Debug, Clone, PartialEq)]
pub struct Impairment {
    /// Probability that a packet is lost (0..=1).
    pub loss: f64,
    /// Propagation delay.
    pub delay: Duration,
    /// Uniform jitter: each packet's delay is `delay` ± up to this (never below zero).
    pub jitter: Duration,
    /// Probability that a packet is held back by `reorder_delay` and overtaken (0..=1).
    pub reorder: f64,
    /// How much longer a reordered packet is held.
    pub reorder_delay: Duration,
    /// Probability that a packet is sent twice (0..=1).
    pub duplicate: f64,
    /// Bottleneck rate in bits per second; `None` is unlimited.
    pub rate_bps: Option<u64>,
    /// Packets the bottleneck queue holds (waiting, not counting the one on the wire); one more
    /// is dropped. Only with `rate_bps`.
    pub queue: usize,
}

impl Default for Impairment {
    fn default() -> Self {
        Self {
            loss: 0.0,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            reorder: 0.0,
            reorder_delay: Duration::from_millis(10),
            duplicate: 0.0,
            rate_bps: None,
            queue: 1000,
        }
    }
}

/// What one direction did with the packets it received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirStats {
    /// Packets that arrived at the proxy (a socket buffer that overflows drops more before, in
    /// the kernel, uncounted).
    pub received: u64,
    /// Packets sent on (duplicates included).
    pub forwarded: u64,
    /// Dropped by random loss.
    pub lost: u64,
    /// Dropped because the bottleneck queue was full.
    pub queue_drops: u64,
    /// Dropped by a blackhole.
    pub blackholed: u64,
    /// Extra copies sent.
    pub duplicated: u64,
    /// Held back to be overtaken.
    pub reordered: u64,
    /// ICMP errors for this direction's packets (on Linux a connected UDP socket reports a
    /// port unreachable on its next send or receive): the far side had nothing listening, as
    /// while the target restarts. The path goes on; the packet that drew it was lost.
    pub refused: u64,
}

impl DirStats {
    /// Every packet dropped, whatever the cause.
    pub fn dropped(&self) -> u64 {
        self.lost + self.queue_drops + self.blackholed
    }
}

/// The fate of one packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Dropped (the stats say why).
    Drop,
    /// Released at these times (two for a duplicate).
    Send(Vec<Instant>),
}

/// One direction's impairment state: the decisions, no I/O. Deterministic given the seed and the
/// (arrival time, length) of each packet.
pub struct Link {
    impairment: Impairment,
    rng: SmallRng,
    blackhole: bool,
    /// When each packet in the bottleneck leaves it, oldest first.
    bottleneck: VecDeque<Instant>,
    /// The latest in-order release time: jitter never releases a packet before this.
    last_release: Option<Instant>,
    stats: DirStats,
}

impl Link {
    pub fn new(impairment: Impairment, seed: u64) -> Self {
        Self {
            impairment,
            rng: SmallRng::seed_from_u64(seed),
            blackhole: false,
            bottleneck: VecDeque::new(),
            last_release: None,
            stats: DirStats::default(),
        }
    }

    pub fn stats(&self) -> DirStats {
        self.stats
    }

    pub fn set_blackhole(&mut self, on: bool) {
        self.blackhole = on;
    }

    pub fn set_impairment(&mut self, impairment: Impairment) {
        self.impairment = impairment;
    }

    /// Counts an ICMP error reported for this direction's packets.
    pub fn refused(&mut self) {
        self.stats.refused += 1;
    }

    /// Decides the fate of a packet of `len` bytes arriving at `now`.
    pub fn decide(&mut self, now: Instant, len: usize) -> Decision {
        self.stats.received += 1;
        if self.blackhole {
            self.stats.blackholed += 1;
            return Decision::Drop;
        }
        let imp = &self.impairment;
        // Every draw is made for every packet, so one setting does not shift another's sequence.
        let lost = self.rng.random::<f64>() < imp.loss;
        let jitter_draw = self.rng.random::<f64>() * 2.0 - 1.0;
        let reordered = self.rng.random::<f64>() < imp.reorder;
        let duplicated = self.rng.random::<f64>() < imp.duplicate;
        if lost {
            self.stats.lost += 1;
            return Decision::Drop;
        }
        // The bottleneck: serialised one after another at the rate, behind a bounded queue.
        let mut leaves = now;
        if let Some(rate) = imp.rate_bps.filter(|rate| *rate > 0) {
            while self.bottleneck.front().is_some_and(|left| *left <= now) {
                self.bottleneck.pop_front();
            }
            // The packet on the wire plus `queue` waiting.
            if self.bottleneck.len() > imp.queue {
                self.stats.queue_drops += 1;
                return Decision::Drop;
            }
            let start = self.bottleneck.back().copied().unwrap_or(now).max(now);
            leaves = start + Duration::from_nanos(len as u64 * 8 * 1_000_000_000 / rate);
            self.bottleneck.push_back(leaves);
        }
        let delay = imp.delay.as_secs_f64() + jitter_draw * imp.jitter.as_secs_f64();
        let mut release = leaves + Duration::from_secs_f64(delay.max(0.0));
        if let Some(last) = self.last_release {
            release = release.max(last);
        }
        if reordered {
            self.stats.reordered += 1;
            release += imp.reorder_delay;
        } else {
            self.last_release = Some(release);
        }
        self.stats.forwarded += 1;
        if duplicated {
            self.stats.duplicated += 1;
            self.stats.forwarded += 1;
            return Decision::Send(vec![release, release]);
        }
        Decision::Send(vec![release])
    }
}

/// A packet waiting for its release time.
struct Scheduled {
    at: Instant,
    order: u64,
    packet: Arc<[u8]>,
    socket: Arc<UdpSocket>,
    /// `None`: the socket is connected (towards the target).
    to: Option<SocketAddr>,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.order).cmp(&(other.at, other.order))
    }
}

/// One direction: its link, and the packets it will send, earliest first.
struct Direction {
    link: Mutex<Link>,
    queue: Mutex<(BinaryHeap<Reverse<Scheduled>>, u64)>,
    wake: Notify,
}

impl Direction {
    fn new(impairment: Impairment, seed: u64) -> Self {
        Self { link: Mutex::new(Link::new(impairment, seed)), queue: Mutex::default(), wake: Notify::new() }
    }

    /// Files a packet that arrived now towards `socket` (and `to`).
    fn arrive(&self, packet: &[u8], socket: &Arc<UdpSocket>, to: Option<SocketAddr>) {
        let decision = self.link.lock().unwrap().decide(Instant::now(), packet.len());
        let Decision::Send(times) = decision else { return };
        let packet: Arc<[u8]> = packet.into();
        let mut queue = self.queue.lock().unwrap();
        for at in times {
            queue.1 += 1;
            let order = queue.1;
            queue.0.push(Reverse(Scheduled { at, order, packet: packet.clone(), socket: socket.clone(), to }));
        }
        drop(queue);
        self.wake.notify_one();
    }

    /// Sends each packet at its time, forever.
    async fn run(self: Arc<Self>) {
        loop {
            let next = self.queue.lock().unwrap().0.peek().map(|Reverse(s)| s.at);
            match next {
                Some(at) if at <= Instant::now() => {
                    let Some(Reverse(due)) = self.queue.lock().unwrap().0.pop() else { continue };
                    let sent = match due.to {
                        Some(to) => due.socket.send_to(&due.packet, to).await,
                        None => due.socket.send(&due.packet).await,
                    };
                    // Any other error loses this packet alone, as a send on a real path would.
                    if sent.as_ref().is_err_and(refusal) {
                        self.link.lock().unwrap().refused();
                    }
                }
                Some(at) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = self.wake.notified() => {}
                    }
                }
                None => self.wake.notified().await,
            }
        }
    }
}

/// An error a UDP socket reports for an ICMP message about an earlier packet (port or host
/// unreachable): news about the path, not the end of the socket.
fn refusal(err: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(err.kind(), ConnectionRefused | ConnectionReset | HostUnreachable | NetworkUnreachable)
}

/// The proxy: clients send to [`NetSim::addr`] instead of the target.
pub struct NetSim {
    addr: SocketAddr,
    dirs: [Arc<Direction>; 2],
    tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Drop for NetSim {
    fn drop(&mut self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

impl NetSim {
    /// A proxy on 127.0.0.1 in front of `target`, impairing client-to-target traffic with `up`
    /// and target-to-client traffic with `down`, its PRNGs seeded from `seed`.
    pub async fn start(target: SocketAddr, seed: u64, up: Impairment, down: Impairment) -> NetSim {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let addr = front.local_addr().unwrap();
        let dirs = [
            Arc::new(Direction::new(up, seed ^ 0x5555_0000_0000_0001)),
            Arc::new(Direction::new(down, seed ^ 0xaaaa_0000_0000_0002)),
        ];
        let tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let mut spawned = vec![tokio::spawn(dirs[0].clone().run()), tokio::spawn(dirs[1].clone().run())];
        let (up, down, all) = (dirs[0].clone(), dirs[1].clone(), tasks.clone());
        spawned.push(tokio::spawn(async move {
            let mut backs: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
            let mut buf = vec![0u8; 65536];
            loop {
                // The front socket is not connected, so Linux reports it no ICMP errors; should one
                // come anyway, it is about one client's packet, and the others go on.
                let (n, from) = match front.recv_from(&mut buf).await {
                    Ok(received) => received,
                    Err(err) if refusal(&err) => continue,
                    Err(_) => break,
                };
                let back = match backs.get(&from) {
                    Some(back) => back.clone(),
                    None => {
                        // A new client: its own socket towards the target, and a task carrying
                        // the target's answers back to it.
                        let Ok(back) = UdpSocket::bind("127.0.0.1:0").await else { continue };
                        if back.connect(target).await.is_err() {
                            continue;
                        }
                        let back = Arc::new(back);
                        backs.insert(from, back.clone());
                        let (socket, front) = (back.clone(), front.clone());
                        let (up, down) = (up.clone(), down.clone());
                        all.lock().unwrap().push(tokio::spawn(async move {
                            let mut buf = vec![0u8; 65536];
                            loop {
                                match socket.recv(&mut buf).await {
                                    Ok(n) => down.arrive(&buf[..n], &front, Some(from)),
                                    // A packet sent up found no one at the target (killed, not
                                    // yet restarted): the path stays for when it is back.
                                    Err(err) if refusal(&err) => up.link.lock().unwrap().refused(),
                                    Err(_) => break,
                                }
                            }
                        }));
                        back
                    }
                };
                up.arrive(&buf[..n], &back, None);
            }
        }));
        tasks.lock().unwrap().extend(spawned);
        NetSim { addr, dirs, tasks }
    }

    /// Where clients send instead of the target.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Drops every packet of `dir` from now on (`true`), or stops doing so (`false`). Packets
    /// already past the blackhole still arrive.
    pub fn set_blackhole(&self, dir: Dir, on: bool) {
        self.dirs[dir.index()].link.lock().unwrap().set_blackhole(on);
    }

    /// Changes `dir`'s impairment from the next packet on.
    pub fn set_impairment(&self, dir: Dir, impairment: Impairment) {
        self.dirs[dir.index()].link.lock().unwrap().set_impairment(impairment);
    }

    /// What `dir` did so far.
    pub fn stats(&self, dir: Dir) -> DirStats {
        self.dirs[dir.index()].link.lock().unwrap().stats()
    }
}
