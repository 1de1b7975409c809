//! An nginx (Debian's) in front of a test server, with the Pneumatic deployment's own
//! `location /files/` block, for tests of Stowage as a drop-in behind it.

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

/// An nginx process proxying `location /files/` to one upstream as Pneumatic's nginx does.
pub struct PneumaticNginx {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl PneumaticNginx {
    /// Starts nginx on a free port in front of `upstream_port` (the upstream named `file-service`,
    /// as in Pneumatic's configuration).
    pub fn start(upstream_port: u16) -> PneumaticNginx {
        PneumaticNginx::start_on(free_port(), upstream_port)
    }

    /// Starts nginx on `port` (chosen beforehand, for a server that must know its public URL).
    pub fn start_on(port: u16, upstream_port: u16) -> PneumaticNginx {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().display().to_string();
        let include = dir.path().join("proxy_to_file_service.conf");
        std::fs::write(&include, PNEUMATIC_FILE_SERVICE_INCLUDE).unwrap();
        let config = format!(
            "daemon off;\nworker_processes 1;\npid {root}/nginx.pid;\nerror_log {root}/error.log info;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log {root}/access.log;\n  client_body_temp_path {root}/body;\n  \
             proxy_temp_path {root}/proxy;\n  fastcgi_temp_path {root}/fastcgi;\n  uwsgi_temp_path {root}/uwsgi;\n  \
             scgi_temp_path {root}/scgi;\n  upstream file-service {{ server 127.0.0.1:{upstream_port}; }}\n  \
             server {{\n    listen 127.0.0.1:{port};\n    server_name localhost;\n    \
             location /files/ {{\n      include {include};\n    }}\n  }}\n}}\n",
            include = include.display()
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
        let nginx = PneumaticNginx {
            child: Some(child),
            port,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
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
}

impl Drop for PneumaticNginx {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
