//! The fan-out's questions over NATS request/reply (feature `cluster`): each node answers on
//! `persona.NAME.ask.<node id>` from its store (`fanout::answer`), and asks the others there.

use super::fanout::{self, Answer, Asks, Question};
use super::map::{ClusterView, Member};
use crate::db::Db;
use crate::error::{Error, Result};
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::runtime::Handle;

/// How long a member has to answer.
const ASK: Duration = Duration::from_secs(5);

/// The subject node `id` of cluster `name` answers on.
fn subject(name: &str, id: &str) -> String {
    format!("persona.{name}.ask.{id}")
}

/// Asks the other members over NATS from the agent's runtime.
pub(super) struct NatsAsks {
    client: async_nats::Client,
    handle: Handle,
    name: String,
}

impl NatsAsks {
    /// Asks over `client`, on the runtime of `handle`, in cluster `name`.
    pub(super) fn new(client: async_nats::Client, handle: Handle, name: &str) -> NatsAsks {
        NatsAsks {
            client,
            handle,
            name: name.to_owned(),
        }
    }
}

impl Asks for NatsAsks {
    fn ask(
        &self,
        members: &[Member],
        question: &Question,
    ) -> Vec<std::result::Result<Answer, String>> {
        let payload = match bincode::serde::encode_to_vec(question, fanout::codec()) {
            Ok(p) => p,
            Err(e) => return members.iter().map(|_| Err(e.to_string())).collect(),
        };
        let requests: Vec<_> = members
            .iter()
            .map(|m| {
                let (client, subject) = (self.client.clone(), subject(&self.name, &m.id));
                let payload = payload.clone();
                async move {
                    match tokio::time::timeout(ASK, client.request(subject, payload.into())).await {
                        Ok(Ok(reply)) => bincode::serde::decode_from_slice::<Answer, _>(
                            &reply.payload,
                            fanout::codec(),
                        )
                        .map(|(a, _)| a)
                        .map_err(|e| format!("its answer does not decode: {e}")),
                        Ok(Err(e)) => Err(e.to_string()),
                        Err(_) => Err(format!("no answer within {ASK:?}")),
                    }
                }
            })
            .collect();
        let (tx, rx) = std::sync::mpsc::channel();
        self.handle.spawn(async move {
            let _ = tx.send(futures_util::future::join_all(requests).await);
        });
        rx.recv_timeout(ASK + Duration::from_secs(1))
            .unwrap_or_else(|_| {
                members
                    .iter()
                    .map(|_| Err("the cluster agent did not answer".into()))
                    .collect()
            })
    }
}

/// Answers the questions sent to this node, each from `db` on a blocking thread, until the
/// subscription ends.
pub(super) async fn serve(
    client: async_nats::Client,
    name: &str,
    view: Arc<ClusterView>,
    db: Db,
) -> Result<()> {
    let mut questions = tokio::time::timeout(ASK, client.subscribe(subject(name, view.id())))
        .await
        .map_err(|_| Error::Cluster("subscribing to questions: no answer".into()))?
        .map_err(|e| Error::Cluster(format!("subscribing to questions: {e}")))?;
    tokio::spawn(async move {
        while let Some(message) = questions.next().await {
            let Some(reply) = message.reply.clone() else {
                continue;
            };
            let (client, view, db) = (client.clone(), Arc::clone(&view), db.clone());
            tokio::spawn(async move {
                let answer = match bincode::serde::decode_from_slice::<Question, _>(
                    &message.payload,
                    fanout::codec(),
                ) {
                    Ok((question, _)) => {
                        tokio::task::spawn_blocking(move || fanout::answer(&db, &view, &question))
                            .await
                            .unwrap_or_else(|e| Answer::Failed(format!("answering: {e}")))
                    }
                    Err(e) => Answer::Failed(format!("the question does not decode: {e}")),
                };
                if let Ok(payload) = bincode::serde::encode_to_vec(&answer, fanout::codec()) {
                    let _ = client.publish(reply, payload.into()).await;
                }
            });
        }
    });
    Ok(())
}
