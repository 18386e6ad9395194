use super::super::due::WINDOW;
use super::Board;
use crate::queue::backlog::Backlog;

fn board(entries: &[(&str, i64)], now: i64) -> (Board, Backlog) {
    let (mut board, backlog) = (Board::default(), Backlog::default());
    board.publish(now, &backlog);
    for (id, at) in entries {
        board.arrive(id, 0);
        board.schedule(id, *at);
    }
    (board, backlog)
}

fn ready(board: &mut Board, backlog: &Backlog, now: i64) -> usize {
    board.publish(now, backlog);
    backlog.get()
}

#[test]
fn the_backlog_is_what_is_due_and_waits_not_what_is_deferred_held_or_busy() {
    let (mut board, backlog) = board(
        &[("new", 100), ("due", 50), ("deferred", 400), ("busy", 90)],
        0,
    );
    board.arrive("held", 0);
    board.set_hold("held", true);
    assert_eq!(board.take_due(100).as_deref(), Some("due"));
    assert_eq!(board.take_due(100).as_deref(), Some("busy"));
    assert!(board.busy("busy"));
    assert_eq!(
        ready(&mut board, &backlog, 100),
        1,
        "only `new` waits for a slot"
    );
    // An administrator's request takes one off; `queue retry` makes
    // the deferred one due.
    board.take("new");
    board.schedule("deferred", 100);
    assert_eq!(ready(&mut board, &backlog, 100), 1);
    // Its attempt deferred it again: the backlog is empty.
    board.schedule("deferred", 400);
    assert_eq!(ready(&mut board, &backlog, 101), 0);
    assert_eq!(board.busy_count(), 3);
}

#[test]
fn deferred_messages_are_not_backlog_and_due_ones_are() {
    let (mut board, backlog) = board(&[("new", 100), ("deferred", 160), ("late", 90)], 100);
    assert_eq!(
        ready(&mut board, &backlog, 100),
        2,
        "due now or earlier counts"
    );
    assert_eq!(ready(&mut board, &backlog, 159), 2);
    assert_eq!(
        ready(&mut board, &backlog, 160),
        3,
        "the deferred one came due"
    );
    // Time does not go back for the count.
    assert_eq!(ready(&mut board, &backlog, 10), 3);
}

#[test]
fn taking_rescheduling_and_removing_keep_the_count_exact() {
    let (mut board, backlog) = board(&[("a", 100), ("b", 101), ("c", 500)], 101);
    assert_eq!(board.take_due(101).as_deref(), Some("a"), "earliest first");
    assert_eq!(ready(&mut board, &backlog, 101), 1);
    // Deferred after its attempt: no longer counted.
    board.schedule("b", 400);
    assert_eq!(ready(&mut board, &backlog, 101), 0);
    // `queue retry`: due now, counted once however often.
    board.schedule("c", 101);
    board.schedule("c", 101);
    assert_eq!(ready(&mut board, &backlog, 101), 1);
    assert_eq!(board.take("c"), Some(101));
    assert_eq!(board.take("c"), None);
    assert_eq!(ready(&mut board, &backlog, 101), 0);
    // Stale entries are skipped: b comes due once, at 400.
    assert_eq!(board.take_due(399), None);
    assert_eq!(board.next_due(), Some(400));
    assert_eq!(board.take_due(400).as_deref(), Some("b"));
    assert_eq!(board.take_due(1000), None);
    assert_eq!(ready(&mut board, &backlog, 1000), 0);
    assert!(board.waiting_ids().is_empty());
}

#[test]
fn a_message_that_leaves_is_forgotten_and_the_oldest_moves_on() {
    let (mut board, backlog) = board(&[], 0);
    let ids: Vec<String> = (0..5u32).map(|n| format!("62091800000000000{n}")).collect();
    for (n, id) in ids.iter().enumerate() {
        board.arrive(id, 1000 + n as i64);
        board.schedule(id, 5000);
    }
    board.leave(&ids[0]);
    board.leave(&ids[1]);
    assert!(!board.queued(&ids[0]) && board.queued(&ids[2]));
    assert_eq!(board.oldest(), Some(1002));
    assert_eq!(ready(&mut board, &backlog, 5000), 3);
    assert_eq!(board.waiting_ids().len(), 3);
}

#[test]
fn deferred_messages_cost_nothing_per_turn_and_stale_entries_are_dropped() {
    let (mut board, backlog) = board(&[], 0);
    let ids: Vec<String> = (0..200_000u32).map(|n| format!("6209{n:014X}")).collect();
    for id in &ids {
        board.arrive(id, 0);
        board.schedule(id, 3600);
    }
    board.arrive("now", 0);
    board.schedule("now", 0);
    for turn in 1..1000 {
        assert_eq!(ready(&mut board, &backlog, turn), 1);
    }
    // `queue retry --all` twice: the heaps do not keep every stale entry.
    for _ in 0..2 {
        for id in &ids {
            board.schedule(id, 1000);
        }
    }
    assert!(board.due.entries() <= 2 * 200_001 + 1024);
    assert_eq!(ready(&mut board, &backlog, 3600), 200_001);
}

#[test]
fn messages_deferred_past_the_window_cost_the_heaps_nothing_until_it_reaches_them() {
    let (mut board, backlog) = board(&[], 1000);
    for n in 0..3000u32 {
        let id = format!("6209{n:014X}");
        board.arrive(&id, 1000);
        board.schedule(&id, 1000 + 2 * i64::from(WINDOW) + i64::from(n % 7));
    }
    board.arrive("soon", 1000);
    board.schedule("soon", 1060);
    assert_eq!(board.due.entries(), 1, "only the one due within the hour");
    assert_eq!(board.next_due(), Some(1060));
    // The window moves on every half hour; each message comes in once.
    let mut now = 1000;
    while now < 1000 + 2 * i64::from(WINDOW) + 10 {
        now += 60;
        board.publish(now, &backlog);
    }
    assert_eq!(backlog.get(), 3001);
    let mut taken = 0;
    while board.take_due(now).is_some() {
        taken += 1;
    }
    assert_eq!((taken, board.waiting_ids().len()), (3001, 0));
}

#[test]
fn retry_all_makes_every_waiting_message_due_and_counts_each_once() {
    let (mut board, backlog) = board(&[("a", 50), ("b", 500), ("c", 9000)], 100);
    board.arrive("held", 0);
    board.set_hold("held", true);
    board.take("b");
    assert_eq!(board.retry_all(100), 2, "a (due already) and c; b is busy");
    assert_eq!(ready(&mut board, &backlog, 100), 2);
    let mut taken = vec![];
    while let Some(id) = board.take_due(100) {
        taken.push(id);
    }
    taken.sort();
    assert_eq!(taken, ["a", "c"]);
    assert_eq!(
        ready(&mut board, &backlog, 9000),
        0,
        "c's old entry is stale"
    );
}

#[test]
fn the_waiting_count_is_what_retry_all_makes_due() {
    let (mut board, _) = board(&[("a", 50), ("b", 500), ("c", 9000)], 100);
    board.take("b");
    board.arrive("held", 0);
    board.set_hold("held", true);
    assert_eq!(board.waiting_count(), 2);
    assert_eq!(board.retry_all(100), 2);
}

#[test]
fn retry_all_has_busy_messages_tried_again_once_their_turn_is_over() {
    let (mut board, _) = board(&[("a", 500), ("b", 500)], 100);
    board.take("b");
    assert_eq!(board.retry_all(100), 1, "a is waiting, b busy");
    assert!(board.turn_over("b"), "b is to be tried again at once");
    assert!(!board.turn_over("b"), "once");
    assert!(!board.turn_over("a"), "a was not busy");
}
