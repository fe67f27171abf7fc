//! When each packet of a replay leaves: one global timeline for all files. A packet's deadline is
//! an absolute offset from the replay's start — `(ts - first_ts) / speed`, or a pace in packets
//! or megabits per second — never an accumulated sleep, so error cannot build up over hours.
//! Waiting is a coarse sleep followed by a short spin on the monotonic clock.

use std::time::{Duration, Instant};

/// How packet times become deadlines.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pace {
    /// Keep the capture's timing, scaled: 2.0 is twice as fast, 0.5 half as fast.
    Timed { speed: f64 },
    /// A fixed number of packets per second, whatever the capture's times.
    PacketsPerSecond(f64),
    /// A fixed bit rate in Mbit/s, from each packet's length.
    Megabits(f64),
    /// As fast as the output takes them.
    TopSpeed,
}

/// Turns packets, in merged time order, into deadlines (nanoseconds after the start).
#[derive(Clone, Debug)]
pub struct Timeline {
    pace: Pace,
    /// The time every offset is measured from (the set's first packet, or the lower bound).
    origin_ns: i64,
    /// Added to every deadline: the length of the loops already played.
    loop_base_ns: u64,
    /// Paced modes: when the previous packet was due and how long it takes on the wire.
    paced_next_ns: u64,
    last_ns: u64,
}

impl Timeline {
    pub fn new(pace: Pace, origin_ns: i64) -> Self {
        Timeline {
            pace,
            origin_ns,
            loop_base_ns: 0,
            paced_next_ns: 0,
            last_ns: 0,
        }
    }

    /// The deadline of a packet captured at `ts_ns` with `len` bytes on the wire.
    #[inline]
    pub fn deadline(&mut self, ts_ns: i64, len: usize) -> u64 {
        let offset = match self.pace {
            Pace::Timed { speed } => {
                let since = ts_ns.saturating_sub(self.origin_ns).max(0) as f64;
                self.loop_base_ns + (since / speed) as u64
            }
            Pace::PacketsPerSecond(pps) => {
                let at = self.paced_next_ns;
                self.paced_next_ns += (1e9 / pps) as u64;
                at
            }
            Pace::Megabits(mbps) => {
                let at = self.paced_next_ns;
                self.paced_next_ns += (len as f64 * 8.0 / (mbps * 1e6) * 1e9) as u64;
                at
            }
            Pace::TopSpeed => 0,
        };
        // Merged input is time-ordered, but a loop or a clamp must never send time backwards.
        self.last_ns = self.last_ns.max(offset);
        self.last_ns
    }

    /// Start the next loop after a set that lasts `set_duration_ns` (capture time); timed loops
    /// follow each other back to back, paced ones simply continue.
    pub fn next_loop(&mut self, set_duration_ns: u64) {
        if let Pace::Timed { speed } = self.pace {
            self.loop_base_ns += (set_duration_ns as f64 / speed) as u64;
            self.last_ns = self.last_ns.max(self.loop_base_ns);
        }
    }
}

/// How far a late sender may make up its lateness in one gap: an eighth of it, and at least
/// [`MIN_CATCH_UP_NS`]. Catching up in one gap would turn every late packet (a virtual machine
/// stalls a vCPU for 10–50 µs hundreds of times a second) into two wrong gaps, one long and one
/// short by as much; spread out, the short ones stay within a few microseconds while the
/// lateness still drains in a few dozen packets, so the timeline holds over hours.
const CATCH_UP_SHARE: u64 = 8;
const MIN_CATCH_UP_NS: u64 = 2_000;

/// The lateness a sender carries from one packet to the next.
#[derive(Clone, Copy, Debug, Default)]
pub struct CatchUp {
    late_ns: u64,
}

impl CatchUp {
    /// When to send a packet due at `deadline_ns`: no earlier than its deadline, and no more
    /// than one gap's share of the lateness earlier than the previous packet's lateness says.
    #[inline]
    pub fn hold(&self, deadline_ns: u64) -> u64 {
        let made_up = (self.late_ns / CATCH_UP_SHARE).max(MIN_CATCH_UP_NS);
        deadline_ns + self.late_ns.saturating_sub(made_up)
    }

    /// A packet due at `deadline_ns` left at `sent_ns`.
    #[inline]
    pub fn sent(&mut self, deadline_ns: u64, sent_ns: u64) {
        self.late_ns = sent_ns.saturating_sub(deadline_ns);
    }
}

/// Ask the kernel to wake sleeps on time: Linux lets a sleeping thread's timer fire up to 50 µs
/// late by default (timer slack), which would eat the whole spin window.
pub fn tighten_timer_slack() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_TIMERSLACK takes a plain integer and only affects this thread.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
    }
}

/// Real-time scheduling for a sender, kept within the kernel's budget. Under the ordinary
/// policy the tasks that share the sender's CPU (a capture on the same machine) delay its
/// wake-ups and spins by up to milliseconds; the FIFO policy lets nothing ordinary delay it.
/// But Linux lets real-time tasks use only 95% of each second: a sender spinning through a
/// dense stream would be stopped for 50 ms every second. So real-time CPU time is counted in
/// 100 ms slots, and a slot that would take the last second's past 90% runs ordinary.
pub struct RealTimeBudget {
    allowed: bool,
    real_time: bool,
    slot_started: Instant,
    cpu_at_slot_start: Duration,
    /// Real-time CPU time of the slots before the current one, oldest first.
    used: [Duration; SLOTS],
    /// Whether the current slot may run under the real-time policy, and whether it did.
    slot_fits: bool,
    slot_was_real_time: bool,
}

const SLOT: Duration = Duration::from_millis(100);
const SLOTS: usize = 9;
/// Real-time CPU time allowed in any ten slots (the kernel's limit is 950 ms a second).
const REAL_TIME_LIMIT: Duration = Duration::from_millis(900);

impl RealTimeBudget {
    /// For the calling thread; whether the real-time policy is allowed (root or CAP_SYS_NICE)
    /// is learnt by taking it once.
    pub fn new() -> Self {
        let allowed = set_real_time(true) && set_real_time(false);
        RealTimeBudget {
            allowed,
            real_time: false,
            slot_started: Instant::now(),
            cpu_at_slot_start: thread_cpu_time(),
            used: [Duration::ZERO; SLOTS],
            slot_fits: true,
            slot_was_real_time: false,
        }
    }

    /// Whether the real-time policy can be used at all.
    pub fn allowed(&self) -> bool {
        self.allowed
    }

    /// Choose the policy for the next wait: real-time while the budget has room.
    #[inline]
    pub fn before_wait(&mut self, now: Instant) {
        if !self.allowed {
            return;
        }
        if now >= self.slot_started + SLOT {
            self.close_slot(now);
        }
        let want = self.slot_fits;
        if want != self.real_time && set_real_time(want) {
            self.real_time = want;
        }
        self.slot_was_real_time |= self.real_time;
    }

    fn close_slot(&mut self, now: Instant) {
        let cpu = thread_cpu_time();
        self.used.rotate_left(1);
        // Conservative: the whole slot's CPU time counts once the thread was real-time in it.
        self.used[SLOTS - 1] = if self.slot_was_real_time {
            cpu.saturating_sub(self.cpu_at_slot_start)
        } else {
            Duration::ZERO
        };
        self.slot_was_real_time = self.real_time;
        self.slot_started = now;
        self.cpu_at_slot_start = cpu;
        self.slot_fits = self.used.iter().sum::<Duration>() + SLOT <= REAL_TIME_LIMIT;
    }
}

impl Default for RealTimeBudget {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for RealTimeBudget {
    fn drop(&mut self) {
        if self.real_time {
            set_real_time(false);
        }
    }
}

/// Put the calling thread under the FIFO (true) or the ordinary (false) policy; returns
/// whether the call succeeded.
fn set_real_time(on: bool) -> bool {
    #[cfg(target_os = "linux")]
    {
        // Threads the sender starts (the next pass's reader) begin under the ordinary policy.
        let (policy, priority) = if on {
            (libc::SCHED_FIFO | libc::SCHED_RESET_ON_FORK, 10)
        } else {
            (libc::SCHED_OTHER, 0)
        };
        let param = libc::sched_param {
            sched_priority: priority,
        };
        // SAFETY: sched_setscheduler reads `param` and changes only this thread's policy.
        unsafe { libc::sched_setscheduler(0, policy, &param) == 0 }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = on;
        false
    }
}

/// CPU time the calling thread has used.
fn thread_cpu_time() -> Duration {
    #[cfg(target_os = "linux")]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one timespec.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }
    #[cfg(not(target_os = "linux"))]
    Duration::ZERO
}

/// Sleep until `deadline`, then spin the last stretch: a sleep alone oversleeps by tens of
/// microseconds. Returns how late the wait ended (zero when it was already past).
pub fn wait_until(deadline: Instant, spin: Duration) -> Duration {
    let now = Instant::now();
    if deadline > now + spin {
        std::thread::sleep(deadline - now - spin);
    }
    loop {
        let now = Instant::now();
        if now >= deadline {
            return now - deadline;
        }
        std::hint::spin_loop();
    }
}

/// Lateness percentiles in bounded memory: log-linear buckets (16 per power of two) of
/// nanoseconds, about 6% resolution, from 1 ns to hours.
#[derive(Clone, Debug)]
pub struct LatenessHistogram {
    buckets: Vec<u64>,
    count: u64,
    max_ns: u64,
}

const SUB_BUCKETS: u64 = 16;
/// Values below 16 get a bucket each; each power of two from 2^4 to 2^63 gets 16.
const BUCKETS: usize = (SUB_BUCKETS + 60 * SUB_BUCKETS) as usize;

impl Default for LatenessHistogram {
    fn default() -> Self {
        LatenessHistogram {
            buckets: vec![0; BUCKETS],
            count: 0,
            max_ns: 0,
        }
    }
}

impl LatenessHistogram {
    fn index(ns: u64) -> usize {
        if ns < SUB_BUCKETS {
            return ns as usize;
        }
        let power = 63 - u64::from(ns.leading_zeros());
        let shift = power - 4;
        let sub = (ns >> shift) - SUB_BUCKETS;
        ((power - 3) * SUB_BUCKETS + sub) as usize
    }

    /// The smallest value that falls in bucket `index` (the inverse of [`Self::index`]).
    fn lower_bound(index: usize) -> u64 {
        let index = index as u64;
        if index < SUB_BUCKETS {
            return index;
        }
        let power = index / SUB_BUCKETS + 3;
        let sub = index % SUB_BUCKETS;
        (SUB_BUCKETS + sub) << (power - 4)
    }

    #[inline]
    pub fn record(&mut self, ns: u64) {
        self.buckets[Self::index(ns)] += 1;
        self.count += 1;
        self.max_ns = self.max_ns.max(ns);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn max_ns(&self) -> u64 {
        self.max_ns
    }

    /// The value at quantile `q` (0..=1), to the bucket's lower bound; 0 when empty.
    pub fn quantile_ns(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Self::lower_bound(i).min(self.max_ns);
            }
        }
        self.max_ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timed_deadlines_scale_with_speed() {
        let mut t = Timeline::new(Pace::Timed { speed: 2.0 }, 1_000);
        assert_eq!(t.deadline(1_000, 60), 0);
        assert_eq!(t.deadline(3_000, 60), 1_000);
        let mut slow = Timeline::new(Pace::Timed { speed: 0.5 }, 1_000);
        assert_eq!(slow.deadline(3_000, 60), 4_000);
    }

    #[test]
    fn deadlines_never_go_backwards() {
        let mut t = Timeline::new(Pace::Timed { speed: 1.0 }, 0);
        assert_eq!(t.deadline(500, 1), 500);
        assert_eq!(t.deadline(100, 1), 500);
    }

    #[test]
    fn loops_follow_back_to_back() {
        let mut t = Timeline::new(Pace::Timed { speed: 1.0 }, 100);
        assert_eq!(t.deadline(100, 1), 0);
        assert_eq!(t.deadline(400, 1), 300);
        t.next_loop(300);
        assert_eq!(t.deadline(100, 1), 300);
        assert_eq!(t.deadline(400, 1), 600);
    }

    #[test]
    fn paced_modes_ignore_capture_times() {
        let mut pps = Timeline::new(Pace::PacketsPerSecond(1000.0), 0);
        assert_eq!(pps.deadline(99, 1), 0);
        assert_eq!(pps.deadline(5, 1), 1_000_000);
        let mut mbps = Timeline::new(Pace::Megabits(8.0), 0);
        assert_eq!(mbps.deadline(0, 1000), 0);
        assert_eq!(
            mbps.deadline(0, 1000),
            1_000_000,
            "1000 bytes at 8 Mbit/s take 1 ms"
        );
        let mut top = Timeline::new(Pace::TopSpeed, 0);
        assert_eq!(top.deadline(1 << 40, 1), 0);
    }

    #[test]
    fn lateness_drains_over_several_gaps_and_never_sends_early() {
        let mut catch_up = CatchUp::default();
        assert_eq!(catch_up.hold(1_000), 1_000, "on time: the deadline itself");
        // A 64 µs stall: the next packets, 100 µs apart, are held back less each time.
        catch_up.sent(0, 64_000);
        let mut deadline = 0;
        let mut holds = Vec::new();
        loop {
            deadline += 100_000;
            let at = catch_up.hold(deadline);
            assert!(at >= deadline, "never before the schedule");
            holds.push(at - deadline);
            catch_up.sent(deadline, at);
            if at == deadline {
                break;
            }
        }
        assert_eq!(holds[0], 56_000, "an eighth made up in the first gap");
        assert!(
            holds
                .windows(2)
                .all(|w| w[0] - w[1] <= 8_000 && w[1] < w[0])
        );
        assert!(holds.len() < 25, "drained in {} gaps", holds.len());
        // A small lateness is made up in one gap.
        catch_up.sent(0, 1_500);
        assert_eq!(catch_up.hold(100_000), 100_000);
    }

    #[test]
    fn a_spinning_sender_leaves_the_real_time_policy_before_the_kernel_throttles_it() {
        let mut budget = RealTimeBudget::new();
        if !budget.allowed() {
            return; // neither root nor CAP_SYS_NICE: the sender stays ordinary
        }
        let started = Instant::now();
        let (mut real_time, mut ordinary) = (Duration::ZERO, Duration::ZERO);
        let mut last = started;
        while last < started + Duration::from_millis(1_300) {
            budget.before_wait(last);
            let now = Instant::now();
            if budget.real_time {
                real_time += now - last;
            } else {
                ordinary += now - last;
            }
            last = now;
        }
        drop(budget);
        assert!(
            real_time >= Duration::from_millis(800),
            "{real_time:?} real-time"
        );
        assert!(
            ordinary >= Duration::from_millis(90),
            "{ordinary:?} ordinary"
        );
        // SAFETY: sched_getscheduler only reads this thread's policy.
        let policy = unsafe { libc::sched_getscheduler(0) };
        assert_eq!(
            policy,
            libc::SCHED_OTHER,
            "dropping the budget restores the policy"
        );
    }

    #[test]
    fn histogram_quantiles_within_a_bucket() {
        let mut h = LatenessHistogram::default();
        for ns in 1..=10_000u64 {
            h.record(ns);
        }
        let p50 = h.quantile_ns(0.5);
        assert!((4_700..=5_000).contains(&p50), "{p50}");
        let p99 = h.quantile_ns(0.99);
        assert!((9_300..=9_900).contains(&p99), "{p99}");
        assert_eq!(h.max_ns(), 10_000);
        for i in 0..BUCKETS {
            assert_eq!(
                LatenessHistogram::index(LatenessHistogram::lower_bound(i)),
                i,
                "bucket {i}"
            );
        }
        h.record(u64::MAX);
        assert_eq!(h.max_ns(), u64::MAX);
    }

    #[test]
    fn waiting_ends_at_the_deadline() {
        let deadline = Instant::now() + Duration::from_millis(3);
        let late = wait_until(deadline, Duration::from_micros(100));
        assert!(Instant::now() >= deadline);
        assert!(late < Duration::from_millis(500), "{late:?}");
    }
}
