//! A RabbitMQ node of one test's own, for tests that stop the broker while the components run:
//! the shared node on 5672 keeps serving every other test. The node has its own name, ports,
//! data and Erlang cookie, no plugins, and keeps its data across [`PrivateRabbit::stop`] and
//! [`PrivateRabbit::start_again`], as a restarted broker does.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";

pub struct PrivateRabbit {
    /// `amqp://guest:guest@127.0.0.1:<port>/%2f`.
    pub url: String,
    port: u16,
    dist_port: u16,
    node: String,
    dir: PathBuf,
    server: Option<Child>,
}

/// A free port below Linux's ephemeral range (32768-60999): a port the kernel hands out for
/// `bind(0)` may be taken by an outgoing connection before the node, which starts slowly,
/// listens on it, and then the test would talk to whatever took it.
fn free_port() -> u16 {
    use rand::Rng;
    loop {
        let port = rand::thread_rng().gen_range(20_000..32_000);
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

impl PrivateRabbit {
    /// Starts a node on free ports and waits until it accepts AMQP connections.
    pub fn start() -> PrivateRabbit {
        let port = free_port();
        let node = format!("faults-{port}@localhost");
        let dir = std::env::temp_dir().join(format!("drawbridge-rabbit-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("enabled_plugins"), "[].\n").unwrap();
        // The machine's own configuration names the shared node's listener; ours replaces it.
        std::fs::write(
            dir.join("rabbitmq.conf"),
            format!("listeners.tcp.default = 127.0.0.1:{port}\n"),
        )
        .unwrap();
        std::fs::write(dir.join("rabbitmq-env.conf"), "").unwrap();
        let mut rabbit = PrivateRabbit {
            url: format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
            port,
            dist_port: free_port(),
            node,
            dir,
            server: None,
        };
        rabbit.start_again();
        rabbit
    }

    /// Starts the node again on its ports and data after [`stop`](Self::stop) or
    /// [`kill`](Self::kill); returns how long it took to accept connections.
    pub fn start_again(&mut self) -> Duration {
        assert!(self.server.is_none(), "the node is running");
        let log = std::fs::File::create(self.dir.join("server.out")).unwrap();
        let started = Instant::now();
        let server = Command::new(SERVER)
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", self.dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", self.dir.join("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", self.dir.join("enabled_plugins"))
            .env("RABBITMQ_CONFIG_FILE", self.dir.join("rabbitmq.conf"))
            .env("RABBITMQ_CONF_ENV_FILE", self.dir.join("rabbitmq-env.conf"))
            .env("HOME", &self.dir)
            // The script then runs the Erlang VM in its own process, so a signal reaches it.
            .env("RUNNING_UNDER_SYSTEMD", "1")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("rabbitmq-server is installed");
        self.server = Some(server);
        // 5-10 s on an idle machine; recovering after a kill on a busy one took over a minute.
        let deadline = started + Duration::from_secs(180);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.server.as_mut().unwrap().try_wait().unwrap() {
                panic!("{} exited ({status}); see {}", self.node, self.dir.display());
            }
            assert!(
                Instant::now() < deadline,
                "{} did not start within 180 s; see {}",
                self.node,
                self.dir.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        started.elapsed()
    }

    /// Stops the node the way `rabbitmqctl stop` does (SIGTERM: queues and connections are
    /// closed in order) and waits until it has exited.
    pub fn stop(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &server.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while server.try_wait().unwrap().is_none() {
                if Instant::now() > deadline {
                    let _ = server.kill();
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Kills the node (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = server.kill();
            let _ = server.wait();
        }
    }
}

impl Drop for PrivateRabbit {
    fn drop(&mut self) {
        self.kill();
        // A failed test keeps the node's logs.
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
