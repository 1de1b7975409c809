//! nginx (Debian's) in front of test servers: with the Pneumatic deployment's own
//! `location /files/` block, for tests of Stowage as a drop-in behind it, or balancing replicas
//! as `deploy/nginx.conf` does.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;

/// The Pneumatic deployment's `includes/proxy_to_file_service.conf`, verbatim.
pub const PNEUMATIC_FILE_SERVICE_INCLUDE: &str = r"            rewrite ^/files/(.*) /$1 break;
            proxy_pass http://file-service;
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            client_max_body_size 105m;

            # Timeouts for large file uploads (100MB at 1MB/s = 100s)
            proxy_connect_timeout 10s;
            proxy_send_timeout 300s;
            proxy_read_timeout 300s;

            # Stream upload directly to file-service without buffering in nginx
            proxy_request_buffering off;
";

/// The nginx binary: `NGINX_BIN`, else `nginx` on `PATH` or in `/usr/sbin`.
pub fn nginx_binary() -> PathBuf {
    if let Ok(bin) = std::env::var("NGINX_BIN") {
        return PathBuf::from(bin);
    }
    let mut candidates: Vec<PathBuf> = std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|dir| PathBuf::from(dir).join("nginx"))
        .collect();
    candidates.push(PathBuf::from("/usr/sbin/nginx"));
    candidates.into_iter().find(|p| p.exists()).expect(
        "nginx is not installed: apt-get install nginx (.ci/run does it before the integration suites)",
    )
}

/// An nginx process of its own (configuration, logs and temporary files in a directory of its
/// own) in front of test servers.
pub struct Nginx {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
}

/// nginx proxying `location /files/` to one upstream as Pneumatic's nginx does.
pub type PneumaticNginx = Nginx;

impl Nginx {
    /// Starts nginx on a free port in front of `upstream_port` as Pneumatic's nginx (the upstream
    /// named `file-service`, as in Pneumatic's configuration).
    pub fn start(upstream_port: u16) -> Nginx {
        Nginx::start_on(free_port(), upstream_port)
    }

    /// Starts Pneumatic's nginx on `port` (chosen beforehand, for a server that must know its
    /// public URL).
    pub fn start_on(port: u16, upstream_port: u16) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let include = dir.path().join("proxy_to_file_service.conf");
        std::fs::write(&include, PNEUMATIC_FILE_SERVICE_INCLUDE).unwrap();
        let http = format!(
            "upstream file-service {{ server 127.0.0.1:{upstream_port}; }}\n  \
             server {{\n    listen 127.0.0.1:{port};\n    server_name localhost;\n    \
             location /files/ {{\n      include {include};\n    }}\n  }}\n",
            include = include.display()
        );
        Nginx::run(dir, port, &http)
    }

    /// Starts nginx on `port` (chosen beforehand) in front of replicas on `backends`, as
    /// `deploy/nginx.conf` does: round robin, bodies streamed both ways, an idempotent request
    /// whose replica fails (error, timeout, `502`) passed to the next one, and bodies up to
    /// 400 MiB.
    pub fn balancing(port: u16, backends: &[u16]) -> Nginx {
        let servers: String = backends
            .iter()
            .map(|p| format!("server 127.0.0.1:{p} max_fails=1 fail_timeout=10s; "))
            .collect();
        let http = format!(
            "upstream stowage {{ {servers}keepalive 16; }}\n  \
             server {{\n    listen 127.0.0.1:{port};\n    \
             client_max_body_size 400m;\n    client_body_timeout 300s;\n    \
             proxy_request_buffering off;\n    proxy_buffering off;\n    \
             proxy_http_version 1.1;\n    proxy_set_header Connection \"\";\n    \
             proxy_set_header Host $http_host;\n    proxy_set_header X-Real-IP $remote_addr;\n    \
             proxy_next_upstream error timeout http_502;\n    \
             proxy_read_timeout 300s;\n    proxy_send_timeout 300s;\n    \
             location / {{\n      proxy_pass http://stowage;\n    }}\n  }}\n"
        );
        Nginx::run(tempfile::tempdir().unwrap(), port, &http)
    }

    /// Writes the configuration (everything in `dir`, with `http` inside the `http` block) and
    /// runs nginx in the foreground until it listens on `port`.
    fn run(dir: tempfile::TempDir, port: u16, http: &str) -> Nginx {
        let root = dir.path().display().to_string();
        let config = format!(
            "daemon off;\nworker_processes 1;\npid {root}/nginx.pid;\nerror_log {root}/error.log info;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  log_format upstreams '\"$request_method $uri\" $status upstream=$upstream_addr';\n  \
             access_log {root}/access.log upstreams;\n  client_body_temp_path {root}/body;\n  \
             proxy_temp_path {root}/proxy;\n  fastcgi_temp_path {root}/fastcgi;\n  uwsgi_temp_path {root}/uwsgi;\n  \
             scgi_temp_path {root}/scgi;\n  {http}}}\n"
        );
        let config_path = dir.path().join("nginx.conf");
        std::fs::write(&config_path, config).unwrap();
        let child = Command::new(nginx_binary())
            .arg("-c")
            .arg(&config_path)
            .arg("-p")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx starts");
        let mut nginx = Nginx {
            child: Some(child),
            port,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = nginx.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!("nginx exited with {status}: {}", nginx.error_log());
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not listen within 10 s: {}",
                nginx.error_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        nginx
    }

    /// `http://127.0.0.1:{port}{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// nginx's error log, for failure messages.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    /// The upstream addresses (`127.0.0.1:port`) of every request nginx logged, in order: one
    /// per attempt, so a request passed to a second upstream gives two.
    pub fn upstreams(&self) -> Vec<String> {
        let log = std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default();
        log.lines()
            .filter_map(|line| line.split_once(" upstream=").map(|(_, u)| u.to_owned()))
            // `a:1, b:2` for a request passed on; ` : ` between the groups of internal redirects.
            .flat_map(|tried| {
                tried
                    .split(", ")
                    .flat_map(|group| group.split(" : "))
                    .map(|u| u.trim().to_owned())
                    .filter(|u| !u.is_empty() && u != "-")
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
