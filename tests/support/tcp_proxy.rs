//! A TCP proxy on 127.0.0.1 whose target can be switched: connections
//! made after a switch go to the new target, those made before stay where
//! they were (as with a DNS name that a managed Redis moves to a new
//! primary after a failover).

use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};

pub struct TcpProxy {
    pub port: u16,
    target: Arc<Mutex<u16>>,
    task: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    /// A proxy to `127.0.0.1:target`.
    pub async fn start(target: u16) -> Result<Self, String> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let target = Arc::new(Mutex::new(target));
        let current = target.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let to = *current.lock().unwrap();
                tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(("127.0.0.1", to)).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Ok(Self { port, target, task })
    }

    /// New connections go to `127.0.0.1:target` from now on.
    pub fn switch_to(&self, target: u16) {
        *self.target.lock().unwrap() = target;
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
