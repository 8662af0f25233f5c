//! The vsmartcard-vpcd socket protocol, card side.
//!
//! vpcd (the reader driver inside pcscd) listens on TCP (35963 for `Virtual PCD 00 00`, 35964 for
//! `… 00 01`); a virtual card *connects* to it, which inserts the card, and closing the socket removes it.
//! Every message is a 2-byte big-endian length followed by that many bytes. A 1-byte message is a
//! control code: `00` power off, `01` power on, `02` reset (no answer), `04` get ATR (answered with the
//! ATR). Any longer message is a C-APDU, answered with the R-APDU.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use card_core::transport::Transport;

/// What a card must do to sit in a vpcd reader.
pub trait VpcdCard {
    /// Power off: volatile state is lost.
    fn power_off(&mut self);
    /// Power on.
    fn power_on(&mut self);
    /// Warm reset.
    fn reset(&mut self);
    /// The answer to reset.
    fn atr(&self) -> Vec<u8>;
    /// Processes one C-APDU. `None` removes the card (a tear): the connection is closed without an answer.
    fn apdu(&mut self, command: &[u8]) -> Option<Vec<u8>>;
}

/// A card served to vpcd from a thread of this process: inserted by [`InsertedCard::insert`], removed by
/// [`InsertedCard::remove`] or on drop. For tests and demos that need a card in a reader without the
/// `card-sim` binary.
pub struct InsertedCard {
    stop: std::sync::Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<(crate::SimTransport, io::Result<Ended>)>>,
}

impl InsertedCard {
    /// Connects to vpcd at `addr` (which inserts the card) and serves it until removed.
    pub fn insert(mut card: crate::SimTransport, addr: &str) -> io::Result<InsertedCard> {
        let mut sock = TcpStream::connect(addr)?;
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let ended = serve(&mut sock, &mut card, &flag);
            (card, ended)
        });
        Ok(InsertedCard { stop, thread: Some(thread) })
    }

    /// Whether the card is still being served (false after a tear or when vpcd went away).
    pub fn is_inserted(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Removes the card and returns it with what it went through (APDU count, modeled time, state).
    pub fn remove(mut self) -> io::Result<crate::SimTransport> {
        self.stop.store(true, Ordering::SeqCst);
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok((card, Ok(_)))) => Ok(card),
            Some(Ok((_, Err(e)))) => Err(e),
            Some(Err(_)) => Err(io::Error::other("the card thread panicked")),
            None => Err(io::Error::other("card already removed")),
        }
    }
}

impl Drop for InsertedCard {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The in-process card with its tearing and timing, sitting in a vpcd reader.
impl VpcdCard for crate::SimTransport {
    fn power_off(&mut self) {
        self.card_mut().power_off();
    }
    fn power_on(&mut self) {
        self.card_mut().power_on();
    }
    fn reset(&mut self) {
        self.card_mut().reset();
    }
    fn atr(&self) -> Vec<u8> {
        // the ATR as the transport has it: a hostile card's short ATR too
        Transport::atr(self).to_vec()
    }
    fn apdu(&mut self, command: &[u8]) -> Option<Vec<u8>> {
        // A tear (the only error of an inserted card) removes the card: no answer.
        self.transmit(command).ok()
    }
}

/// Why [`serve`] returned.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// vpcd closed the connection (pcscd stopped or restarted).
    ReaderGone,
    /// The stop flag was raised (SIGTERM, Ctrl-C).
    Stopped,
    /// The card removed itself (a tear).
    Torn,
}

/// Control codes of the protocol.
const POWER_OFF: u8 = 0x00;
const POWER_ON: u8 = 0x01;
const RESET: u8 = 0x02;
const GET_ATR: u8 = 0x04;

/// Reads frames from a socket with a read timeout, so that the stop flag is checked regularly,
/// keeping partial frames across timeouts.
struct Framer {
    buf: Vec<u8>,
}

impl Framer {
    fn next(&mut self, sock: &mut TcpStream, stop: &AtomicBool) -> io::Result<Option<Vec<u8>>> {
        loop {
            if self.buf.len() >= 2 {
                let len = usize::from(u16::from_be_bytes([self.buf[0], self.buf[1]]));
                if self.buf.len() >= 2 + len {
                    let frame = self.buf[2..2 + len].to_vec();
                    self.buf.drain(..2 + len);
                    return Ok(Some(frame));
                }
            }
            if stop.load(Ordering::SeqCst) {
                return Ok(None);
            }
            let mut chunk = [0u8; 4096];
            // vpcd writes a frame's length and its bytes in two sends under Nagle's algorithm: the bytes wait
            // for our ACK of the length, which Linux delays up to 40 ms. Acknowledge at once instead.
            quick_ack(sock);
            match sock.read(&mut chunk) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "vpcd closed the connection")),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    quick_ack(sock);
                }
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// TCP_QUICKACK (Linux): the mode does not stick, so it is set again around every read.
fn quick_ack(sock: &TcpStream) {
    #[cfg(target_os = "linux")]
    {
        let _ = socket2::SockRef::from(sock).set_tcp_quickack(true);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = sock;
}

fn send(sock: &mut TcpStream, payload: &[u8]) -> io::Result<()> {
    let len = u16::try_from(payload.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame longer than 65535 bytes"))?;
    let mut out = Vec::with_capacity(payload.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    sock.write_all(&out)
}

/// Serves one connection until vpcd closes it, `stop` is raised, or the card tears itself out.
pub fn serve(sock: &mut TcpStream, card: &mut dyn VpcdCard, stop: &AtomicBool) -> io::Result<Ended> {
    sock.set_read_timeout(Some(Duration::from_millis(200)))?;
    sock.set_nodelay(true)?;
    let mut framer = Framer { buf: Vec::new() };
    loop {
        let frame = match framer.next(sock, stop) {
            Ok(Some(f)) => f,
            Ok(None) => return Ok(Ended::Stopped),
            Err(e) if matches!(e.kind(), io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset) => {
                return Ok(Ended::ReaderGone)
            }
            Err(e) => return Err(e),
        };
        match frame.as_slice() {
            [POWER_OFF] => card.power_off(),
            [POWER_ON] => card.power_on(),
            [RESET] => card.reset(),
            [GET_ATR] => send(sock, &card.atr())?,
            [other] => tracing::warn!("unknown vpcd control code {other:02X}"),
            [] => tracing::warn!("empty vpcd frame"),
            apdu => match card.apdu(apdu) {
                Some(resp) => send(sock, &resp)?,
                None => return Ok(Ended::Torn),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    struct Echo {
        powered: bool,
        resets: u32,
        tear_on: Option<Vec<u8>>,
    }

    impl VpcdCard for Echo {
        fn power_off(&mut self) {
            self.powered = false;
        }
        fn power_on(&mut self) {
            self.powered = true;
        }
        fn reset(&mut self) {
            self.resets += 1;
        }
        fn atr(&self) -> Vec<u8> {
            vec![0x3B, 0x00]
        }
        fn apdu(&mut self, command: &[u8]) -> Option<Vec<u8>> {
            if self.tear_on.as_deref() == Some(command) {
                return None;
            }
            let mut r = command.to_vec();
            r.extend_from_slice(&[0x90, 0x00]);
            Some(r)
        }
    }

    /// Plays vpcd: sends frames, reads answers.
    #[test]
    fn frames_controls_and_apdus() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let card_side = std::thread::spawn(move || {
            let mut sock = TcpStream::connect(addr).unwrap();
            let mut card = Echo { powered: false, resets: 0, tear_on: Some(vec![0xDE, 0xAD]) };
            let stop = AtomicBool::new(false);
            let ended = serve(&mut sock, &mut card, &stop).unwrap();
            (ended, card.powered, card.resets)
        });
        let (mut vpcd, _) = listener.accept().unwrap();
        let frame = |v: &mut TcpStream, p: &[u8]| {
            let mut out = (p.len() as u16).to_be_bytes().to_vec();
            out.extend_from_slice(p);
            v.write_all(&out).unwrap();
        };
        let answer = |v: &mut TcpStream| {
            let mut len = [0u8; 2];
            v.read_exact(&mut len).unwrap();
            let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
            v.read_exact(&mut buf).unwrap();
            buf
        };
        frame(&mut vpcd, &[POWER_ON]);
        frame(&mut vpcd, &[RESET]);
        frame(&mut vpcd, &[GET_ATR]);
        assert_eq!(answer(&mut vpcd), vec![0x3B, 0x00]);
        // a frame split in two TCP writes
        vpcd.write_all(&[0x00, 0x05, 0x00, 0xA4]).unwrap();
        vpcd.flush().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        vpcd.write_all(&[0x04, 0x00, 0x00]).unwrap();
        assert_eq!(answer(&mut vpcd), vec![0x00, 0xA4, 0x04, 0x00, 0x00, 0x90, 0x00]);
        frame(&mut vpcd, &[0xDE, 0xAD]);
        let (ended, powered, resets) = card_side.join().unwrap();
        assert_eq!((ended, powered, resets), (Ended::Torn, true, 1));
    }

    #[test]
    fn reader_gone_when_vpcd_closes() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let card_side = std::thread::spawn(move || {
            let mut sock = TcpStream::connect(addr).unwrap();
            let mut card = Echo { powered: false, resets: 0, tear_on: None };
            serve(&mut sock, &mut card, &AtomicBool::new(false)).unwrap()
        });
        let (vpcd, _) = listener.accept().unwrap();
        drop(vpcd);
        assert_eq!(card_side.join().unwrap(), Ended::ReaderGone);
    }
}
