//! A connected vhost-user socket: a reader thread delivers whole messages in order to a sink;
//! the owner sends replies without blocking and closes.

use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use crate::message::Message;
use crate::message_reader::read_message;
use crate::message_sender::send_message;
use crate::transport_error::TransportError;
use crate::unix_socket::{peer_credentials, peer_hung_up, set_blocking, shutdown, PeerCredentials};

/// Messages the reader may hand out before the owner has handled them.
pub const MAX_IN_FLIGHT: usize = 64;

/// What the reader thread delivers. `Closed` comes exactly once, last.
#[derive(Debug)]
pub enum ReaderEvent {
    Message(Message),
    /// End-of-file or `close()` (`None`), or the error that ended reading.
    Closed(Option<TransportError>),
}

/// Messages delivered and not yet handled. The reader waits while `MAX_IN_FLIGHT` are
/// outstanding, so a front-end that floods the socket cannot grow the owner's queue without
/// bound (the socket buffer fills and the front-end blocks instead).
#[derive(Debug, Default)]
pub struct InFlight {
    state: Mutex<InFlightState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct InFlightState {
    outstanding: usize,
    closed: bool,
}

impl InFlight {
    /// The owner finished handling one delivered message.
    pub fn handled(&self) {
        let mut state = self.lock();
        state.outstanding = state.outstanding.saturating_sub(1);
        self.changed.notify_all();
    }

    /// True once the owner closed the connection: late deliveries are to be dropped.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Reserves room for one more message; false once the connection is closed.
    fn reserve(&self) -> bool {
        let mut state = self.lock();
        while !state.closed && state.outstanding >= MAX_IN_FLIGHT {
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        if state.closed {
            return false;
        }
        state.outstanding += 1;
        true
    }

    fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, InFlightState> {
        // The state stays consistent even if a holder panicked: it is two plain fields.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One connected socket. Dropping it closes it.
#[derive(Debug)]
pub struct Connection {
    /// Shared with the reader thread; `None` once closed.
    socket: Option<Arc<OwnedFd>>,
    reader: Option<JoinHandle<()>>,
    in_flight: Arc<InFlight>,
}

impl Connection {
    /// Takes ownership of a connected stream socket and makes it blocking for the reader.
    pub fn new(socket: OwnedFd) -> Result<Self, TransportError> {
        set_blocking(socket.as_fd())?;
        Ok(Connection {
            socket: Some(Arc::new(socket)),
            reader: None,
            in_flight: Arc::default(),
        })
    }

    /// The credit counter the owner calls `handled()` on after each delivered message.
    pub fn in_flight(&self) -> Arc<InFlight> {
        Arc::clone(&self.in_flight)
    }

    /// Starts the reader thread. `sink` runs on that thread, once per message, then once with
    /// `Closed`; it must not block on the owner's thread (the owner may be joining the reader).
    pub fn start<F>(&mut self, sink: F) -> Result<(), TransportError>
    where
        F: FnMut(ReaderEvent) + Send + 'static,
    {
        let socket = Arc::clone(self.socket.as_ref().ok_or(TransportError::Closed)?);
        if self.reader.is_some() {
            return Err(TransportError::AlreadyStarted);
        }
        let in_flight = Arc::clone(&self.in_flight);
        let reader = std::thread::Builder::new()
            .name("vu-conn-reader".into())
            .spawn(move || read_loop(&socket, &in_flight, sink))
            .map_err(|e| {
                TransportError::Socket(crate::sys_error::SysError::from_io("pthread_create", &e))
            })?;
        self.reader = Some(reader);
        Ok(())
    }

    /// Sends one message without blocking (see `send_message`).
    pub fn send(&self, bytes: &[u8], fds: &[RawFd]) -> Result<(), TransportError> {
        let socket = self.socket.as_ref().ok_or(TransportError::Closed)?;
        send_message(socket.as_fd(), bytes, fds)
    }

    pub fn peer_credentials(&self) -> Result<PeerCredentials, TransportError> {
        let socket = self.socket.as_ref().ok_or(TransportError::Closed)?;
        peer_credentials(socket.as_fd())
    }

    /// True once the peer has closed its end (or this side was closed), even if the reader
    /// thread has not reported it yet.
    pub fn peer_hung_up(&self) -> Result<bool, TransportError> {
        match self.socket.as_ref() {
            Some(socket) => peer_hung_up(socket.as_fd()),
            None => Ok(true),
        }
    }

    /// Shuts the socket down, waits for the reader to finish, closes the fd. Idempotent.
    pub fn close(&mut self) {
        let Some(socket) = self.socket.take() else {
            return;
        };
        self.in_flight.close();
        // Wakes a reader blocked in recvmsg (also one stalled mid-message). An error here means
        // the socket is already unusable, which is what closing wants.
        let _ = shutdown(socket.as_fd());
        if let Some(reader) = self.reader.take() {
            // The reader only panics on a bug; the fd is closed below either way.
            let _ = reader.join();
        }
        drop(socket);
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.close();
    }
}

fn read_loop<F: FnMut(ReaderEvent)>(socket: &OwnedFd, in_flight: &InFlight, mut sink: F) {
    let end = loop {
        if !in_flight.reserve() {
            break None;
        }
        match read_message(socket.as_fd()) {
            // Data still buffered when the owner closed is not delivered.
            Ok(Some(_)) if in_flight.is_closed() => break None,
            Ok(Some(message)) => sink(ReaderEvent::Message(message)),
            Ok(None) => break None,
            // The owner's shutdown ends a blocked read; that is a close, not an error.
            Err(_) if in_flight.is_closed() => break None,
            Err(err) => break Some(err),
        }
    };
    sink(ReaderEvent::Closed(end));
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;
    use crate::test_support::{message_bytes, socket_pair, write_all};

    const WAIT: Duration = Duration::from_secs(5);

    fn started(socket: OwnedFd) -> (Connection, mpsc::Receiver<ReaderEvent>) {
        let mut connection = Connection::new(socket).unwrap();
        let (tx, rx) = mpsc::channel();
        connection
            .start(move |event| tx.send(event).unwrap())
            .unwrap();
        (connection, rx)
    }

    fn expect_message(rx: &mpsc::Receiver<ReaderEvent>) -> Message {
        match rx.recv_timeout(WAIT).unwrap() {
            ReaderEvent::Message(message) => message,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    #[test]
    fn delivers_messages_in_order_then_closed_once_on_eof() {
        let (front_end, back_end) = socket_pair();
        let (_connection, rx) = started(back_end);
        let messages: Vec<_> = (0..5).map(|i| message_bytes(i, &[i as u8; 4])).collect();
        write_all(&front_end, &messages.concat());
        for expected in &messages {
            assert_eq!(&expect_message(&rx).bytes, expected);
        }
        drop(front_end);
        assert!(matches!(
            rx.recv_timeout(WAIT).unwrap(),
            ReaderEvent::Closed(None)
        ));
        assert!(
            rx.recv_timeout(Duration::from_millis(50)).is_err(),
            "nothing after Closed"
        );
    }

    #[test]
    fn hostile_size_ends_the_reader_with_the_error() {
        let (front_end, back_end) = socket_pair();
        let (_connection, rx) = started(back_end);
        let mut header = message_bytes(1, &[]);
        header[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        write_all(&front_end, &header);
        assert!(matches!(
            rx.recv_timeout(WAIT).unwrap(),
            ReaderEvent::Closed(Some(TransportError::PayloadTooLarge { .. }))
        ));
    }

    #[test]
    fn close_while_the_peer_is_stalled_mid_message_returns_and_reports_a_clean_close() {
        let (front_end, back_end) = socket_pair();
        let (mut connection, rx) = started(back_end);
        write_all(&front_end, &message_bytes(1, &[0; 8])[..5]);
        std::thread::sleep(Duration::from_millis(20));
        connection.close();
        assert!(matches!(
            rx.recv_timeout(WAIT).unwrap(),
            ReaderEvent::Closed(None)
        ));
        connection.close();
        assert!(matches!(
            connection.send(&message_bytes(1, &[]), &[]),
            Err(TransportError::Closed)
        ));
    }

    #[test]
    fn reader_waits_while_max_in_flight_messages_are_unhandled() {
        let (front_end, back_end) = socket_pair();
        let (connection, rx) = started(back_end);
        let in_flight = connection.in_flight();
        let one = message_bytes(1, &[]);
        write_all(&front_end, &one.repeat(MAX_IN_FLIGHT + 1));
        for _ in 0..MAX_IN_FLIGHT {
            expect_message(&rx);
        }
        assert!(
            rx.recv_timeout(Duration::from_millis(100)).is_err(),
            "reader must wait for credit"
        );
        in_flight.handled();
        expect_message(&rx);
    }

    #[test]
    fn send_reaches_the_peer_and_peer_credentials_are_ours() {
        let (front_end, back_end) = socket_pair();
        let connection = Connection::new(back_end).unwrap();
        let reply = message_bytes(1, &[1, 2, 3, 4, 5, 6, 7, 8]);
        connection.send(&reply, &[]).unwrap();
        let got = read_message(front_end.as_fd()).unwrap().unwrap();
        assert_eq!(got.bytes, reply);
        let cred = connection.peer_credentials().unwrap();
        // SAFETY: getpid/getuid have no preconditions.
        assert_eq!((cred.pid, cred.uid), unsafe {
            (libc::getpid(), libc::getuid())
        });
    }

    #[test]
    fn peer_hung_up_is_seen_before_the_reader_reports_it() {
        let (front_end, back_end) = socket_pair();
        let mut connection = Connection::new(back_end).unwrap();
        assert!(!connection.peer_hung_up().unwrap());
        // Unread data does not hide the hang-up.
        write_all(&front_end, &message_bytes(1, &[]));
        assert!(!connection.peer_hung_up().unwrap());
        drop(front_end);
        assert!(connection.peer_hung_up().unwrap());
        connection.close();
        assert!(connection.peer_hung_up().unwrap());
    }

    #[test]
    fn start_twice_is_refused() {
        let (_front_end, back_end) = socket_pair();
        let (mut connection, _rx) = started(back_end);
        assert!(matches!(
            connection.start(|_| {}),
            Err(TransportError::AlreadyStarted)
        ));
    }
}
