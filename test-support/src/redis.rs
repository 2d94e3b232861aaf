//! A Redis server of one test's own, for tests of what the components do while Redis is away:
//! the shared one on 6379 keeps serving every other test.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct PrivateRedis {
    /// `redis://127.0.0.1:<port>`.
    pub url: String,
    server: Option<Child>,
    dir: PathBuf,
}

impl PrivateRedis {
    /// Starts `redis-server` on a free port, keeping nothing on disk, and waits until it
    /// accepts connections.
    pub fn start() -> PrivateRedis {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let dir = std::env::temp_dir().join(format!("drawbridge-redis-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        let server = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(&dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        PrivateRedis {
            url: format!("redis://127.0.0.1:{port}"),
            server: Some(server),
            dir,
        }
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
