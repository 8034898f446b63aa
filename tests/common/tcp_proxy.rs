//! A plain TCP front for a server that can be repointed while clients use it: every
//! connection is piped to the current upstream, and [`TcpProxy::repoint`] cuts the open ones so
//! pooled HTTP clients reconnect to the new upstream at once.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub struct TcpProxy {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    upstream: Arc<Mutex<SocketAddr>>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    task: JoinHandle<()>,
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut_connections();
    }
}

impl TcpProxy {
    /// Listens on 127.0.0.1 port 0 in front of `upstream`.
    pub async fn start(upstream: SocketAddr) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let url = format!("http://{}", listener.local_addr().expect("proxy address"));
        let upstream = Arc::new(Mutex::new(upstream));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn({
            let upstream = Arc::clone(&upstream);
            let connections = Arc::clone(&connections);
            async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    let target = *upstream.lock().unwrap();
                    let pipe = tokio::spawn(async move {
                        if let Ok(mut server) = TcpStream::connect(target).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    let mut open = connections.lock().unwrap();
                    open.retain(|c: &JoinHandle<()>| !c.is_finished());
                    open.push(pipe);
                }
            }
        });
        TcpProxy {
            url,
            upstream,
            connections,
            task,
        }
    }

    /// Sends new connections to `upstream` and closes the open ones.
    pub fn repoint(&self, upstream: SocketAddr) {
        *self.upstream.lock().unwrap() = upstream;
        self.cut_connections();
    }

    fn cut_connections(&self) {
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }
}
