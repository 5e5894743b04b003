//! The wake-up round trip between two CPUs (`cpu-probe --wake A B`): a thread on B sleeps in a
//! read of an eventfd; a thread on A, after sleeping GAP itself (so that both CPUs go idle, as
//! between two pings), writes that eventfd and sleeps until B answers on another. What one
//! sample times is two wake-ups of a sleeping thread, each on its own CPU.
//!
//! Why the bench wants it: a back-end in its own process on another CPU than QEMU adds two such
//! cross-CPU wake-ups to every ping (the guest's kick wakes the back-end; the back-end's call
//! wakes QEMU), where QEMU's built-in tap switches threads on one CPU. On a virtual machine a
//! sleeping vCPU is woken by the host, which can cost far more than on bare metal; A = B gives
//! the same-CPU figure to compare with.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::{outcome, pin_to, Stop, DEADLINE};

const SAMPLES: usize = 50;
/// How long the asking side sleeps before each sample. The longer the CPUs idle, the slower the
/// wake-up (here: ~45 µs a round trip 0.1 ms apart, ~100 µs 1 ms apart, ~130 µs 10 ms apart);
/// the bench's pings are 100 ms apart, and 50 samples of 10 ms keep the probe under a second.
const GAP: Duration = Duration::from_millis(10);
/// Written instead of a ping by a side that gives up (larger than the pings can ever add up to).
const ABANDON: u64 = 1 << 40;

fn eventfd() -> Result<OwnedFd, String> {
    // SAFETY: eventfd takes no pointers; a non-negative result is a new fd we own.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(format!("eventfd: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: just created, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn signal(fd: &OwnedFd, value: u64) {
    // SAFETY: writes the 8 bytes of a live u64. It cannot block: the counter stays far below its
    // limit (at most SAMPLES + ABANDON is ever added before a read).
    unsafe { libc::write(fd.as_raw_fd(), (&value as *const u64).cast(), 8) };
}

/// Sleeps until `fd` is signalled and consumes the signal; an error after DEADLINE, or
/// if the other side gave up.
fn wait(fd: &OwnedFd, other_cpu: usize) -> Result<(), Stop> {
    let mut poll_fd = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd.
    let ready = unsafe { libc::poll(&mut poll_fd, 1, DEADLINE.as_millis() as libc::c_int) };
    if ready <= 0 {
        return Err(Stop::Failed(format!("the thread on CPU {other_cpu} did not answer within {DEADLINE:?}")));
    }
    let mut value = 0u64;
    // SAFETY: reads 8 bytes into a live u64; the fd is readable (poll), so this does not block.
    if unsafe { libc::read(fd.as_raw_fd(), (&mut value as *mut u64).cast(), 8) } != 8 {
        return Err(Stop::Failed(format!("eventfd read: {}", std::io::Error::last_os_error())));
    }
    if value >= ABANDON {
        return Err(Stop::OtherGaveUp);
    }
    Ok(())
}

/// The microseconds of each sample's round trip between CPUs `a` and `b` (which may be equal).
pub fn measure(a: usize, b: usize) -> Result<Vec<f64>, String> {
    let (to_b, to_a) = (eventfd()?, eventfd()?);
    std::thread::scope(|scope| {
        let responder = scope.spawn(|| {
            let answered = pin_to(b).map_err(Stop::Failed).and_then(|()| {
                (0..SAMPLES).try_for_each(|_| {
                    wait(&to_b, a)?;
                    signal(&to_a, 1);
                    Ok(())
                })
            });
            if answered.is_err() {
                signal(&to_a, ABANDON);
            }
            answered
        });
        let asked = pin_to(a).map_err(Stop::Failed).and_then(|()| {
            (0..SAMPLES)
                .map(|_| {
                    std::thread::sleep(GAP);
                    let start = Instant::now();
                    signal(&to_b, 1);
                    wait(&to_a, b)?;
                    Ok(start.elapsed().as_nanos() as f64 / 1000.0)
                })
                .collect::<Result<Vec<f64>, Stop>>()
        });
        if asked.is_err() {
            signal(&to_b, ABANDON);
        }
        let answered = responder.join().map_err(|_| "the responder thread panicked".to_string())?;
        outcome(asked, answered)
    })
}
