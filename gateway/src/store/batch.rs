//! Many requests' writes as one statement. Most of what PostgreSQL spends on a small write is
//! per statement, not per row: reading and planning the tables' CHECK constraints, opening
//! their indexes, the commit and its WAL flush. A batcher's workers each take the requests that
//! are waiting, up to a limit, and run them together, so batches grow with the load and a lone
//! request goes out at once: an idle gateway adds no wait. Under the flows bench this halved
//! PostgreSQL's CPU per verified registration and cut it by a third per acceptance
//! (BENCHMARKS.md).

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;

use prometheus::Histogram;
use serde::Serialize;
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot, Mutex};
use uuid::Uuid;

/// Batches of one kind that may run at once. While one runs, the next requests gather for the
/// next; more workers make smaller batches, and Postgres then spends more per request (four
/// workers: 10–15 % more CPU per flow in the flows bench, for no more throughput).
const WORKERS: usize = 2;
/// Requests in one statement: enough to make the per-statement cost small, few enough that one
/// statement's locks and its wait stay short.
const MAX_BATCH: usize = 64;
/// Requests waiting beyond this make new ones wait to be queued (back-pressure, not refusal).
const QUEUE: usize = 4096;

/// One request waiting for its batch.
struct Job<I, A> {
    item: I,
    answer: oneshot::Sender<Result<A, sqlx::Error>>,
}

/// Submits requests to the workers of one kind of statement.
pub struct Batcher<I, A> {
    jobs: mpsc::Sender<Job<I, A>>,
}

impl<I: Clone + Send + Sync + 'static, A: Send + 'static> Batcher<I, A> {
    /// Starts the workers. `run` executes one batch and answers each item, in order. Items with
    /// the same `key` never share a batch: a batch's statement sees its rows as they were when it
    /// began, so two requests for the same registration must run one after the other. `sizes`
    /// observes the number of requests in each batch.
    ///
    /// A statement is all or nothing, so when a batch fails (one request breaking a constraint,
    /// or a deadlock with another transaction) each of its requests runs again alone, and only
    /// the ones at fault get the error.
    pub fn start<K, F, Fut>(sizes: Histogram, key: fn(&I) -> K, run: F) -> Self
    where
        K: Eq + Hash + 'static,
        F: Fn(Vec<I>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<A>, sqlx::Error>> + Send,
    {
        let (jobs, receiver) = mpsc::channel(QUEUE);
        let queue = Arc::new(Mutex::new(Queue {
            jobs: receiver,
            held: VecDeque::new(),
        }));
        let run = Arc::new(run);
        for _ in 0..WORKERS {
            let (queue, run, sizes) = (queue.clone(), run.clone(), sizes.clone());
            tokio::spawn(async move {
                loop {
                    // The lock is held while a batch forms, not while it runs.
                    let batch = queue.lock().await.next_batch(key).await;
                    // Ends when every `Batcher` handle is gone and the queue is empty.
                    let Some(batch) = batch else { break };
                    sizes.observe(batch.len() as f64);
                    let (items, answers): (Vec<I>, Vec<_>) =
                        batch.into_iter().map(|job| (job.item, job.answer)).unzip();
                    let retry = (items.len() > 1).then(|| items.clone());
                    match (answered(&*run, items).await, retry) {
                        (Ok(results), _) => reply(answers, results.into_iter().map(Ok).collect()),
                        (Err(error), None) => reply(answers, vec![Err(error)]),
                        (Err(error), Some(items)) => {
                            tracing::warn!(%error, count = items.len(), "batched statement failed; running its requests one by one");
                            for (item, answer) in items.into_iter().zip(answers) {
                                let result = answered(&*run, vec![item]).await.map(|mut one| one.remove(0));
                                // The request may have been dropped (client gone); its write stands.
                                let _ = answer.send(result);
                            }
                        }
                    }
                }
            });
        }
        Batcher { jobs }
    }

    /// Runs `item` in the next batch and returns its answer, or the error of the statement
    /// that ran it (`PoolClosed` if the workers have stopped).
    pub async fn submit(&self, item: I) -> Result<A, sqlx::Error> {
        let (answer, receiver) = oneshot::channel();
        self.jobs
            .send(Job { item, answer })
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        receiver.await.map_err(|_| sqlx::Error::PoolClosed)?
    }
}

/// A batcher for a statement that takes its batch as a JSON array (`$1`) and returns the ids
/// of the rows it made: each request is answered whether its row, `id`, was made.
pub fn made<I, K>(
    pool: PgPool,
    sizes: Histogram,
    key: fn(&I) -> K,
    statement: &'static str,
    id: fn(&I) -> Uuid,
) -> Batcher<I, bool>
where
    I: Serialize + Clone + Send + Sync + 'static,
    K: Eq + Hash + 'static,
{
    Batcher::start(sizes, key, move |batch: Vec<I>| {
        let pool = pool.clone();
        async move {
            let made: HashSet<Uuid> = sqlx::query_scalar(statement)
                .bind(sqlx::types::Json(&batch))
                .fetch_all(&pool)
                .await?
                .into_iter()
                .collect();
            Ok(batch.iter().map(|item| made.contains(&id(item))).collect())
        }
    })
}

/// Runs one batch, checking it was answered item for item.
async fn answered<I, A, F, Fut>(run: &F, items: Vec<I>) -> Result<Vec<A>, sqlx::Error>
where
    F: Fn(Vec<I>) -> Fut,
    Fut: Future<Output = Result<Vec<A>, sqlx::Error>>,
{
    let count = items.len();
    let results = run(items).await?;
    if results.len() != count {
        return Err(sqlx::Error::Protocol(format!(
            "a batch of {count} requests was answered {} times",
            results.len()
        )));
    }
    Ok(results)
}

/// Hands each waiting request its answer, in order.
fn reply<A>(answers: Vec<oneshot::Sender<Result<A, sqlx::Error>>>, results: Vec<Result<A, sqlx::Error>>) {
    for (answer, result) in answers.into_iter().zip(results) {
        // The request may have been dropped (client gone); its write stands.
        let _ = answer.send(result);
    }
}

/// The requests not yet in a batch: new ones in the channel, and those held back because a
/// request with the same key was in the batch being formed.
struct Queue<I, A> {
    jobs: mpsc::Receiver<Job<I, A>>,
    held: VecDeque<Job<I, A>>,
}

impl<I, A> Queue<I, A> {
    /// Waits for one request, then takes every other one already waiting, up to [`MAX_BATCH`],
    /// oldest first. `None` once the channel is closed and nothing is held.
    async fn next_batch<K: Eq + Hash>(&mut self, key: fn(&I) -> K) -> Option<Vec<Job<I, A>>> {
        let first = match self.held.pop_front() {
            Some(job) => job,
            None => self.jobs.recv().await?,
        };
        let mut keys = HashSet::from([key(&first.item)]);
        let mut batch = vec![first];
        let mut still_held = VecDeque::new();
        while batch.len() < MAX_BATCH {
            let Some(job) = self.held.pop_front().or_else(|| self.jobs.try_recv().ok()) else {
                break;
            };
            if keys.insert(key(&job.item)) {
                batch.push(job);
            } else {
                still_held.push_back(job);
            }
        }
        still_held.append(&mut self.held);
        self.held = still_held;
        Some(batch)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex as StdMutex;

    use super::*;

    fn sizes() -> Histogram {
        Histogram::with_opts(prometheus::HistogramOpts::new("sizes", "batch sizes")).unwrap()
    }

    /// Requests `(key, n)` answered `2n`.
    type Doubler = Arc<Batcher<(u32, u32), u32>>;
    /// Each batch a statement ran, in order.
    type Seen = Arc<StdMutex<Vec<Vec<(u32, u32)>>>>;

    /// Requests `(key, n)`, each answered `2n` by a statement that records its batch and takes
    /// 20 ms, long enough for the other requests to queue behind the first batches. It fails
    /// whenever its batch holds the key `fail_on`.
    fn recording(fail_on: Option<u32>) -> (Doubler, Seen) {
        let batches = Arc::new(StdMutex::new(Vec::new()));
        let seen = batches.clone();
        let batcher = Batcher::start(
            sizes(),
            |item: &(u32, u32)| item.0,
            move |items: Vec<(u32, u32)>| {
                let seen = seen.clone();
                async move {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    seen.lock().unwrap().push(items.clone());
                    if items.iter().any(|(key, _)| Some(*key) == fail_on) {
                        return Err(sqlx::Error::RowNotFound);
                    }
                    Ok(items.iter().map(|(_, n)| n * 2).collect())
                }
            },
        );
        (Arc::new(batcher), batches)
    }

    /// Submits `(key(n), n)` for every `n` at once; the answers in order of `n`.
    async fn submit_all(batcher: &Doubler, count: u32, key: fn(u32) -> u32) -> Vec<Result<u32, sqlx::Error>> {
        let requests = (0..count).map(|n| {
            let batcher = batcher.clone();
            tokio::spawn(async move { batcher.submit((key(n), n)).await })
        });
        futures_util::future::join_all(requests)
            .await
            .into_iter()
            .map(|answer| answer.expect("request task"))
            .collect()
    }

    #[tokio::test]
    async fn every_request_gets_its_own_answer_and_waiting_ones_share_batches() {
        let (batcher, batches) = recording(None);
        for (n, answer) in submit_all(&batcher, 200, |n| n).await.into_iter().enumerate() {
            assert_eq!(answer.unwrap(), 2 * n as u32);
        }
        let batches = batches.lock().unwrap();
        assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), 200);
        assert!(batches.iter().all(|batch| batch.len() <= MAX_BATCH));
        assert!(
            batches.len() < 200 / 4,
            "{} batches for 200 requests",
            batches.len()
        );
    }

    #[tokio::test]
    async fn requests_with_the_same_key_never_share_a_batch() {
        let (batcher, batches) = recording(None);
        for (n, answer) in submit_all(&batcher, 30, |n| n % 3).await.into_iter().enumerate() {
            assert_eq!(answer.unwrap(), 2 * n as u32);
        }
        let batches = batches.lock().unwrap();
        assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), 30);
        for batch in batches.iter() {
            let keys: HashSet<u32> = batch.iter().map(|(key, _)| *key).collect();
            assert_eq!(keys.len(), batch.len(), "a key twice in {batch:?}");
        }
    }

    #[tokio::test]
    async fn a_failed_statement_fails_its_request_with_the_reason() {
        let (batcher, _) = recording(Some(1));
        let error = batcher.submit((1, 1)).await.unwrap_err();
        assert!(matches!(error, sqlx::Error::RowNotFound), "{error:?}");
    }

    #[tokio::test]
    async fn when_a_batch_fails_only_the_requests_at_fault_get_the_error() {
        // As one row breaking a constraint fails a whole statement.
        let (batcher, batches) = recording(Some(13));
        for (n, answer) in submit_all(&batcher, 30, |n| n).await.into_iter().enumerate() {
            match answer {
                Ok(m) => assert_eq!(m, 2 * n as u32),
                Err(error) => assert!(
                    n == 13 && matches!(error, sqlx::Error::RowNotFound),
                    "{n}: {error:?}"
                ),
            }
        }
        let batches = batches.lock().unwrap();
        assert!(
            batches
                .iter()
                .any(|batch| batch.len() > 1 && batch.contains(&(13, 13))),
            "13 shared a batch that then ran one by one: {batches:?}"
        );
    }
}
