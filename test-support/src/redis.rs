//! A Redis server of one test's own, for tests of what the components do while Redis is away:
//! the shared one on 6379 keeps serving every other test.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct PrivateRedis {
    /// `redis://127.0.0.1:<port>`.
    pub url: String,
    port: u16,
    append_only: bool,
    server: Option<Child>,
    dir: PathBuf,
}

impl PrivateRedis {
    /// Starts `redis-server` on a free port, keeping nothing on disk, and waits until it
    /// accepts connections.
    pub fn start() -> PrivateRedis {
        PrivateRedis::start_with(false)
    }

    /// Starts `redis-server` with the append-only file (`appendfsync everysec`), as
    /// deploy/README.md asks for the waiting rooms, so that [`restart`](Self::restart) finds
    /// what it held.
    pub fn start_append_only() -> PrivateRedis {
        PrivateRedis::start_with(true)
    }

    fn start_with(append_only: bool) -> PrivateRedis {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let dir = std::env::temp_dir().join(format!("drawbridge-redis-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut redis = PrivateRedis {
            url: format!("redis://127.0.0.1:{port}"),
            port,
            append_only,
            server: None,
            dir,
        };
        redis.restart();
        redis
    }

    /// Starts the server again on its port (and append-only file) after [`kill`](Self::kill);
    /// returns how long it took to accept connections.
    pub fn restart(&mut self) -> Duration {
        assert!(self.server.is_none(), "the server is running");
        let started = Instant::now();
        let append_only = if self.append_only { "yes" } else { "no" };
        let server = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", append_only, "--dir"])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        self.server = Some(server);
        let deadline = started + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        started.elapsed()
    }

    /// Kills the server, as a crash would: connections break and new ones are refused.
    pub fn kill(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = server.kill();
            let _ = server.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
