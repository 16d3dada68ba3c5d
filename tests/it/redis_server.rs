//! A real `redis-server` for the bus tests, on a free loopback port with a temporary
//! directory and no persistence, killed on drop. Shared by the library's tests and the
//! gateway's (`#[path]`). `redis-server` missing is a failure, never a skip: `.ci/run`
//! installs it.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    port: u16,
    password: Option<String>,
    dir: PathBuf,
    child: Option<Child>,
    /// A TLS port beside the plain one (which the harness keeps using for its own commands).
    tls_port: Option<u16>,
}

impl RedisServer {
    /// Starts one and waits until it answers `PING`.
    pub fn start() -> Self {
        Self::start_inner(None)
    }

    /// [`start`](Self::start), requiring `password` (`requirepass`).
    pub fn start_with_password(password: &str) -> Self {
        Self::start_inner(Some(password.to_owned()))
    }

    /// [`start_with_password`](Self::start_with_password), also serving TLS on
    /// [`tls_url`](Self::tls_url) with the PEM certificate `cert_pem` and key `key_pem`.
    pub fn start_tls(password: &str, cert_pem: &str, key_pem: &str) -> Self {
        let mut server = Self::start_inner(Some(password.to_owned()));
        std::fs::write(server.dir.join("tls.crt"), cert_pem).unwrap();
        std::fs::write(server.dir.join("tls.key"), key_pem).unwrap();
        server.tls_port = Some(free_port());
        server.restart();
        server
    }

    /// `rediss://:<password>@127.0.0.1:<tls port>/`, when started with TLS.
    pub fn tls_url(&self) -> Option<String> {
        let password = self.password.as_deref().unwrap_or_default();
        self.tls_port
            .map(|port| format!("rediss://:{password}@127.0.0.1:{port}/"))
    }

    fn start_inner(password: Option<String>) -> Self {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("tower-stytch-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = Self {
            port,
            password,
            dir,
            child: None,
            tls_port: None,
        };
        server.restart();
        server
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        match &self.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}/", self.port),
            None => format!("redis://127.0.0.1:{}/", self.port),
        }
    }

    /// Kills it (SIGKILL): every connection drops, and, without persistence, its data is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port (empty).
    pub fn restart(&mut self) {
        self.kill();
        let mut command = Command::new("redis-server");
        if let Some(password) = &self.password {
            command.args(["--requirepass", password]);
        }
        if let Some(tls_port) = self.tls_port {
            command
                .args([
                    "--tls-port",
                    &tls_port.to_string(),
                    "--tls-auth-clients",
                    "no",
                ])
                .arg("--tls-cert-file")
                .arg(self.dir.join("tls.crt"))
                .arg("--tls-key-file")
                .arg(self.dir.join("tls.key"));
        }
        let child = command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| {
                panic!(
                    "cannot start redis-server ({err}): the Redis bus tests need it \
                     (apt-get install -y redis-server; .ci/run installs it)"
                )
            });
        self.child = Some(child);
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if self.command(&["PING"]).is_some_and(|r| r == "+PONG") {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "redis-server did not answer PING within 10 s on port {}",
            self.port
        );
    }

    /// Sends one command; the first line of the reply (`:3` for an integer 3), or `None`
    /// when Redis cannot be reached.
    pub fn command(&self, args: &[&str]) -> Option<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let encode = |args: &[&str]| {
            let mut request = format!("*{}\r\n", args.len());
            for arg in args {
                request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
            }
            request
        };
        let mut reader = BufReader::new(stream.try_clone().ok()?);
        let mut line = String::new();
        if let Some(password) = &self.password {
            stream
                .write_all(encode(&["AUTH", password]).as_bytes())
                .ok()?;
            reader.read_line(&mut line).ok()?;
            line.clear();
        }
        stream.write_all(encode(args).as_bytes()).ok()?;
        reader.read_line(&mut line).ok()?;
        Some(line.trim_end().to_owned())
    }

    /// An integer reply (`XLEN`, `XACK`…).
    pub fn integer(&self, args: &[&str]) -> Option<i64> {
        self.command(args)?.strip_prefix(':')?.parse().ok()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port free on loopback now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
