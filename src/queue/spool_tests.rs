use super::*;
use crate::queue::envelope::Recipient;

pub(super) fn envelope() -> Envelope {
    Envelope {
        sender: "a@b.test".into(),
        recipients: vec![Recipient {
            address: "c@d.test".into(),
            orcpt: None,
            notify: None,
        }],
        ..Envelope::default()
    }
}

#[tokio::test]
async fn committed_messages_read_back_and_aborted_ones_leave_nothing() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let spool = Spool::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let mut small = spool.create(&envelope());
    small
        .write(b"Subject: small\r\n\r\nhi\r\n")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let small_id = small.commit().await.unwrap_or_else(|e| panic!("{e}"));

    let big_body: Vec<u8> = (0..3 * MEMORY_LIMIT)
        .map(|i| b'a' + (i % 26) as u8)
        .collect();
    let mut big = spool.create(&envelope());
    for piece in big_body.chunks(10_000) {
        big.write(piece).await.unwrap_or_else(|e| panic!("{e}"));
    }
    let big_id = big.commit().await.unwrap_or_else(|e| panic!("{e}"));

    let mut aborted = spool.create(&envelope());
    aborted
        .write(&big_body)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    drop(aborted);

    let mut ids = vec![small_id.clone(), big_id.clone()];
    ids.sort();
    assert_eq!(spool.list().ok(), Some(ids));
    let (env, content) = spool.read(&small_id).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(env, envelope());
    assert_eq!(content, b"Subject: small\r\n\r\nhi\r\n");
    assert_eq!(spool.read(&big_id).map(|(_, c)| c).ok(), Some(big_body));
    // The big one in a file of its own, the small one in a segment.
    let names: Vec<String> = fs::read_dir(dir.path().join("queue"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(names, [big_id], "{names:?}");
}

#[tokio::test]
async fn leftovers_of_unacknowledged_messages_are_removed_at_start() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    fs::create_dir_all(dir.path().join("queue")).unwrap_or_else(|e| panic!("{e}"));
    fs::write(dir.path().join("queue/0000.tmp"), b"half a message")
        .unwrap_or_else(|e| panic!("{e}"));
    let spool = Spool::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(spool.list().ok(), Some(vec![]));
    assert!(!dir.path().join("queue/0000.tmp").exists());
}

#[tokio::test]
async fn many_concurrent_commits_share_folder_syncs() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let spool = Spool::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let spool = spool.clone();
            tokio::spawn(async move {
                let mut writer = spool.create(&envelope());
                writer.write(format!("message {i}\r\n").as_bytes()).await?;
                writer.commit().await
            })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(
            task.await
                .unwrap_or_else(|e| panic!("{e}"))
                .unwrap_or_else(|e| panic!("{e}")),
        );
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 200, "ids are unique");
    assert_eq!(spool.list().map(|l| l.len()).ok(), Some(200));
    let batches = committer::lock(&spool.inner.view.index).batches;
    assert!(batches <= 20, "200 commits took {batches} batches (syncs)");
}

#[test]
fn corrupt_files_are_reported_not_trusted() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let spool = Spool::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    fs::write(dir.path().join("queue/BAD"), b"garbage").unwrap_or_else(|e| panic!("{e}"));
    let error = spool
        .read("BAD")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        error.ends_with("queue/BAD: not a tlsrelay spool file"),
        "{error}"
    );
}

#[tokio::test]
async fn a_message_that_lost_content_to_a_write_error_cannot_be_committed() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let spool = Spool::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let mut writer = spool.create(&envelope());
    // The spill to `<ID>.tmp` fails once (here: a folder is in the way,
    // in life: EMFILE, ENOSPC, EIO), and the content it carried is gone.
    fs::create_dir(&writer.tmp).unwrap_or_else(|e| panic!("{e}"));
    let first = vec![b'a'; MEMORY_LIMIT];
    assert!(writer.write(&first).await.is_err());
    fs::remove_dir(&writer.tmp).unwrap_or_else(|e| panic!("{e}"));
    writer
        .write(b"the rest\r\n")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        writer.commit().await.is_err(),
        "a message missing its first {MEMORY_LIMIT} bytes was committed"
    );
    assert_eq!(spool.list().ok(), Some(vec![]));
    let names: Vec<_> = fs::read_dir(dir.path().join("queue"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(names.is_empty(), "{names:?}");
}

#[test]
fn ids_stay_unique_and_ordered_when_the_counter_wraps() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let spool = Spool::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let first = spool.next_id();
    spool.inner.next.store(0xFF_FFFF, Ordering::Relaxed);
    let last_before_wrap = spool.next_id();
    let after_wrap = spool.next_id();
    assert_ne!(after_wrap, first, "the 16,777,217th id repeats the first");
    assert!(first < last_before_wrap && last_before_wrap < after_wrap);
    assert_eq!(after_wrap.len(), first.len());
}

/// The inode number of the file at `path`.
fn inode(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(path).map_or(0, |m| m.ino())
}

/// A message too large for a segment: it gets a file of its own.
fn big(tag: &str) -> Vec<u8> {
    let mut body = format!("Subject: {tag}\r\n\r\n").into_bytes();
    body.resize(MEMORY_LIMIT + 10, b'a');
    body
}

async fn commit(spool: &Spool, body: &[u8]) -> String {
    let mut writer = spool.create(&envelope());
    writer.write(body).await.unwrap_or_else(|e| panic!("{e}"));
    writer.commit().await.unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn a_finished_message_leaves_an_empty_spare_that_the_next_one_reuses() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let spool = Spool::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let first = commit(&spool, &big("one")).await;
    let first_inode = inode(&dir.path().join("queue").join(&first));
    spool.remove(&first);
    assert!(!spool.contains(&first));
    let spares: Vec<_> = fs::read_dir(dir.path().join("spare"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert_eq!(spares.len(), 1, "{spares:?}");
    assert_eq!(fs::metadata(&spares[0]).map(|m| m.len()).ok(), Some(0));
    assert_eq!(inode(&spares[0]), first_inode);

    let second = commit(&spool, &big("two")).await;
    assert_eq!(inode(&dir.path().join("queue").join(&second)), first_inode);
    assert_eq!(spool.read(&second).map(|(_, c)| c).ok(), Some(big("two")));
    assert_eq!(
        fs::read_dir(dir.path().join("spare"))
            .map(|d| d.count())
            .ok(),
        Some(0)
    );
}

#[tokio::test]
async fn open_empties_spares_and_drops_what_a_crash_left_half_recycled() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let kept = {
        let spool = Spool::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        commit(&spool, &big("kept")).await
    };
    let queue = dir.path().join("queue");
    let spare = dir.path().join("spare");
    // The truncation survived, the rename to spare/ did not.
    fs::write(queue.join("00000000000A000001"), b"").unwrap_or_else(|e| panic!("{e}"));
    // The rename survived, the truncation did not.
    fs::write(spare.join("7"), b"old content").unwrap_or_else(|e| panic!("{e}"));
    fs::write(spare.join("stray"), b"x").unwrap_or_else(|e| panic!("{e}"));

    let spool = Spool::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(spool.list().ok(), Some(vec![kept.clone()]));
    assert_eq!(fs::metadata(spare.join("7")).map(|m| m.len()).ok(), Some(0));
    assert!(!spare.join("stray").exists());
    // The next removal is numbered past the spares found.
    spool.remove(&kept);
    assert!(spare.join("8").exists());
}

#[tokio::test]
async fn past_the_limit_finished_messages_are_unlinked() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let spare = dir.path().join("spare");
    fs::create_dir_all(&spare).unwrap_or_else(|e| panic!("{e}"));
    for n in 0..SPARE_LIMIT {
        fs::write(spare.join(n.to_string()), b"").unwrap_or_else(|e| panic!("{e}"));
    }
    fs::write(spare.join(SPARE_LIMIT.to_string()), b"").unwrap_or_else(|e| panic!("{e}"));
    let spool = Spool::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let count = || fs::read_dir(&spare).map(|d| d.count()).unwrap_or(0);
    assert_eq!(count(), SPARE_LIMIT);
    let id = commit(&spool, &big("x")).await;
    assert_eq!(count(), SPARE_LIMIT - 1);
    spool.remove(&id);
    let id = commit(&spool, &big("y")).await;
    assert_eq!(count(), SPARE_LIMIT - 1);
    spool.remove(&id);
    assert!(!spool.contains(&id));
    assert_eq!(count(), SPARE_LIMIT);
}

#[tokio::test]
async fn a_small_message_is_handed_out_once_from_memory_a_spilled_one_never() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let spool = Spool::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let small = commit(&spool, b"Subject: small\r\n\r\nhi\r\n").await;
    assert_eq!(
        spool.take_fresh(&small),
        Some((envelope(), b"Subject: small\r\n\r\nhi\r\n".to_vec()))
    );
    assert_eq!(spool.take_fresh(&small), None);
    // Still on disk, as committed.
    assert_eq!(
        spool.read(&small).map(|(_, c)| c).ok(),
        Some(b"Subject: small\r\n\r\nhi\r\n".to_vec())
    );

    let removed = commit(&spool, b"Subject: gone\r\n\r\nhi\r\n").await;
    spool.remove(&removed);
    assert_eq!(spool.take_fresh(&removed), None);

    let big = commit(&spool, &vec![b'a'; 2 * MEMORY_LIMIT]).await;
    assert_eq!(spool.take_fresh(&big), None);
    assert_eq!(
        spool.read(&big).map(|(_, c)| c.len()).ok(),
        Some(2 * MEMORY_LIMIT)
    );
}

/// A done record goes to the committer without waking it when it is busy,
/// but wakes it when it waits: with no message after it, a reader of the
/// disk (as `tlsrelay queue list` is) no longer sees the message within a
/// moment.
#[tokio::test]
async fn a_removal_reaches_the_disk_soon_with_no_message_after_it() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let spool = Spool::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let kept = commit(&spool, b"Subject: kept\r\n\r\nhi\r\n").await;
    let gone = commit(&spool, b"Subject: gone\r\n\r\nhi\r\n").await;
    spool.remove(&gone);
    let on_disk = || {
        SpoolView::open(dir.path())
            .and_then(|view| view.ids())
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while on_disk().contains(&gone) {
        assert!(
            std::time::Instant::now() < deadline,
            "the done record was never written"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(on_disk(), [kept]);
}
