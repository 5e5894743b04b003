//! Accepts connections on a listening socket from a thread of its own, until closed.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::eventfd::{eventfd_create, eventfd_write};
use crate::poll::poll_readable;
use crate::sys_error::{check, SysError};
use crate::transport_error::TransportError;
use crate::unix_socket::accept_connection;

/// How long to back off when `accept` fails for lack of resources (`EMFILE`, `ENOBUFS`...)
/// before trying again: the pending connection stays queued meanwhile.
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(100);

/// The accept thread. It holds its own duplicate of the listening socket, so closing the
/// caller's fd neither stops it nor races with it: `close()` does.
#[derive(Debug)]
pub struct Acceptor {
    stop: Option<OwnedFd>,
    thread: Option<JoinHandle<()>>,
}

impl Acceptor {
    /// Starts accepting on `listener`; `on_connection` runs on the accept thread with each new
    /// blocking, CLOEXEC socket and must not block on the thread that calls `close()`.
    pub fn start<F>(listener: BorrowedFd<'_>, on_connection: F) -> Result<Self, TransportError>
    where
        F: FnMut(OwnedFd) + Send + 'static,
    {
        // SAFETY: F_DUPFD_CLOEXEC on a valid fd has no memory effects.
        let dup = check(
            unsafe { libc::fcntl(listener.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) },
            "fcntl",
        )?;
        // SAFETY: fcntl returned a new fd that nothing else owns.
        let listener = unsafe { OwnedFd::from_raw_fd(dup) };
        let stop = eventfd_create()?;
        let stop_for_thread = stop
            .try_clone()
            .map_err(|e| SysError::from_io("fcntl", &e))?;
        let thread = std::thread::Builder::new()
            .name("vu-acceptor".into())
            .spawn(move || accept_loop(&listener, &stop_for_thread, on_connection))
            .map_err(|e| SysError::from_io("pthread_create", &e))?;
        Ok(Acceptor {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Stops the accept thread and waits for it. Idempotent.
    pub fn close(&mut self) {
        let Some(stop) = self.stop.take() else { return };
        // Cannot fail short of the counter overflowing, which one write of 1 cannot do.
        let _ = eventfd_write(stop.as_fd(), 1);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        self.close();
    }
}

fn accept_loop<F: FnMut(OwnedFd)>(listener: &OwnedFd, stop: &OwnedFd, mut on_connection: F) {
    loop {
        let ready = match poll_readable(&[listener.as_fd(), stop.as_fd()], None) {
            Ok(ready) => ready,
            // poll only fails on bad arguments or no memory; both fds are ours and valid.
            Err(_) => return,
        };
        if ready[1] {
            return;
        }
        // One connection per wake-up, never "accept until EAGAIN": an inherited listener may be
        // blocking (systemd hands sockets over so unless NonBlocking=yes, and its flags belong to
        // an open file description systemd shares, so they are not ours to change). A second
        // accept would then wait for the next connection, deaf to `close()`. Poll is
        // level-triggered: connections still queued wake the next round at once.
        match accept_connection(listener.as_fd()) {
            Ok(Some(socket)) => on_connection(socket),
            Ok(None) => {}
            Err(_) => {
                // Out of fds or memory: wait (or stop) instead of spinning on the queued peer.
                match poll_readable(&[stop.as_fd()], Some(ACCEPT_RETRY_DELAY)) {
                    Ok(ready) if !ready[0] => {}
                    _ => return,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;
    use crate::message_reader::read_message;
    use crate::message_sender::send_message;
    use crate::test_support::{message_bytes, temp_socket_path};
    use crate::unix_socket::{connect_unix, listen_unix, set_blocking};

    #[test]
    fn accepts_each_connection_until_closed() {
        let path = temp_socket_path("acceptor");
        let listener = listen_unix(&path, 0o600).unwrap();
        let (tx, rx) = mpsc::channel();
        let mut acceptor =
            Acceptor::start(listener.as_fd(), move |socket| tx.send(socket).unwrap()).unwrap();

        for i in 0..3 {
            let front_end = connect_unix(&path).unwrap();
            let back_end = rx.recv_timeout(Duration::from_secs(5)).unwrap();
            send_message(front_end.as_fd(), &message_bytes(i, &[]), &[]).unwrap();
            assert_eq!(
                read_message(back_end.as_fd()).unwrap().unwrap().bytes,
                message_bytes(i, &[])
            );
        }
        acceptor.close();
        acceptor.close();
        // Still listening (the caller's fd is open) but nobody accepts any more.
        let _late = connect_unix(&path).unwrap();
        assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_blocking_listener_accepts_queued_connections_and_close_still_returns() {
        // As systemd hands a socket over by default (no NonBlocking=).
        let path = temp_socket_path("acceptor-blocking");
        let listener = listen_unix(&path, 0o600).unwrap();
        set_blocking(listener.as_fd()).unwrap();
        let (tx, rx) = mpsc::channel();
        let _queued = [connect_unix(&path).unwrap(), connect_unix(&path).unwrap()];
        let acceptor =
            Acceptor::start(listener.as_fd(), move |socket| tx.send(socket).unwrap()).unwrap();
        for _ in 0..2 {
            rx.recv_timeout(Duration::from_secs(5)).unwrap();
        }
        let (closed_tx, closed_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut acceptor = acceptor;
            acceptor.close();
            closed_tx.send(()).unwrap();
        });
        closed_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("close() returned: the thread is not stuck in a blocking accept");
        std::fs::remove_file(&path).unwrap();
    }
}
