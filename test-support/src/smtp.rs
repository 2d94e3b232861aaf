//! A local SMTP server (RFC 5321, plain, no TLS) that records every accepted message and the
//! connections it was sent on, and can be told to refuse the next recipients temporarily (451)
//! or for good (550), to take its time over each message, or to take the next messages and
//! drop the connection before its reply (the answer lost).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
pub struct Email {
    pub from: String,
    pub to: Vec<String>,
    /// The raw message as sent after DATA (headers and MIME body).
    pub data: String,
    /// When the server took it.
    pub accepted_at: Instant,
    /// Taken, and the connection closed before the reply (see [`FakeSmtp::drop_reply_next`]):
    /// the sender cannot know it went out.
    pub reply_lost: bool,
}

impl Email {
    /// The value of its `Message-ID` header, as the sender recorded it.
    pub fn message_id(&self) -> Option<&str> {
        self.data
            .lines()
            .take_while(|line| !line.is_empty())
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("message-id").then(|| value.trim())
            })
    }
}

#[derive(Default)]
struct State {
    accepted: Vec<Email>,
    refusals: VecDeque<u16>,
    /// Before answering each message's DATA.
    delay: Duration,
    /// Messages to take and then hang up on without the reply.
    lost_replies: usize,
    connections: usize,
    /// Connections the client ended with QUIT.
    quits: usize,
}

#[derive(Clone)]
pub struct FakeSmtp {
    pub port: u16,
    state: Arc<Mutex<State>>,
}

impl FakeSmtp {
    pub async fn start() -> FakeSmtp {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind fake SMTP");
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(session(socket, shared.clone()));
            }
        });
        FakeSmtp { port, state }
    }

    pub fn accepted(&self) -> Vec<Email> {
        self.state.lock().unwrap().accepted.clone()
    }

    /// Refuse the next recipients with these reply codes, in order.
    pub fn refuse_next(&self, codes: &[u16]) {
        self.state.lock().unwrap().refusals.extend(codes);
    }

    /// Take the next `count` messages, then close their connections instead of replying 250.
    pub fn drop_reply_next(&self, count: usize) {
        self.state.lock().unwrap().lost_replies += count;
    }

    /// Wait this long before accepting each message.
    pub fn delay_each(&self, delay: Duration) {
        self.state.lock().unwrap().delay = delay;
    }

    /// Connections opened so far, and how many of them the client has closed with QUIT.
    pub fn connections(&self) -> (usize, usize) {
        let state = self.state.lock().unwrap();
        (state.connections, state.quits)
    }
}

async fn session(socket: tokio::net::TcpStream, state: Arc<Mutex<State>>) -> std::io::Result<()> {
    state.lock().unwrap().connections += 1;
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read).lines();
    write.write_all(b"220 fake.smtp.test ESMTP ready\r\n").await?;
    let (mut from, mut to) = (String::new(), Vec::new());
    while let Some(line) = lines.next_line().await? {
        let upper = line.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") {
            "250-fake.smtp.test\r\n250-8BITMIME\r\n250 SMTPUTF8".into()
        } else if upper.starts_with("HELO") || upper.starts_with("NOOP") {
            "250 OK".into()
        } else if upper.starts_with("MAIL FROM:") {
            from = line[10..].trim().to_owned();
            to.clear();
            "250 OK".into()
        } else if upper.starts_with("RCPT TO:") {
            match state.lock().unwrap().refusals.pop_front() {
                Some(451) => "451 4.3.0 Try again later".into(),
                Some(code) => format!("{code} 5.1.1 Mailbox unavailable"),
                None => {
                    to.push(line[8..].trim().to_owned());
                    "250 OK".into()
                }
            }
        } else if upper == "DATA" {
            write
                .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                .await?;
            let mut data = String::new();
            loop {
                match lines.next_line().await? {
                    Some(line) if line == "." => break,
                    Some(line) => {
                        data.push_str(line.strip_prefix('.').unwrap_or(&line));
                        data.push('\n');
                    }
                    // A connection closed before the final dot aborts the transaction
                    // (RFC 5321, 3.8): nothing was taken.
                    None => return Ok(()),
                }
            }
            let delay = state.lock().unwrap().delay;
            tokio::time::sleep(delay).await;
            let mut state = state.lock().unwrap();
            let reply_lost = state.lost_replies > 0;
            state.accepted.push(Email {
                from: from.clone(),
                to: to.clone(),
                data,
                accepted_at: Instant::now(),
                reply_lost,
            });
            if reply_lost {
                state.lost_replies -= 1;
                return Ok(());
            }
            "250 2.0.0 queued".into()
        } else if upper == "RSET" {
            to.clear();
            "250 OK".into()
        } else if upper == "QUIT" {
            state.lock().unwrap().quits += 1;
            write.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else {
            "502 command not implemented".into()
        };
        write.write_all(format!("{reply}\r\n").as_bytes()).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_message_cut_off_before_its_final_dot_is_not_taken() {
        let smtp = FakeSmtp::start().await;
        let socket = tokio::net::TcpStream::connect(("127.0.0.1", smtp.port))
            .await
            .unwrap();
        let (read, mut write) = socket.into_split();
        let mut replies = BufReader::new(read).lines();
        let greeting = replies.next_line().await.unwrap().unwrap();
        assert!(greeting.starts_with("220"), "{greeting}");
        for (command, code) in [
            ("HELO client", "250"),
            ("MAIL FROM:<a@example.de>", "250"),
            ("RCPT TO:<b@example.de>", "250"),
            ("DATA", "354"),
        ] {
            write
                .write_all(format!("{command}\r\n").as_bytes())
                .await
                .unwrap();
            let reply = replies.next_line().await.unwrap().unwrap();
            assert!(reply.starts_with(code), "{command}: {reply}");
        }
        // A sender killed mid-message: half the headers, then the connection closes.
        write.write_all(b"From: a@example.de\r\nTo: b@exa").await.unwrap();
        drop(write);
        assert!(
            replies.next_line().await.unwrap().is_none(),
            "the server hangs up"
        );
        assert!(smtp.accepted().is_empty(), "{:?}", smtp.accepted());
    }
}
