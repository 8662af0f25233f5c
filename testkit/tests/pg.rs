//! `testkit::pg`: a cluster stopped and started again keeps its data and its port; a test database is fresh.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use testkit::pg::{Cluster, TestDb};

fn connect(url: &str) -> Result<postgres::Client, postgres::Error> {
    url.parse::<postgres::Config>().unwrap().connect(postgres::NoTls)
}

#[test]
fn a_cluster_stopped_and_started_again_keeps_its_data_and_port() {
    let mut cluster = Cluster::start();
    let url = cluster.url();
    let mut c = connect(&url).unwrap();
    c.batch_execute("CREATE TABLE t (x INT); INSERT INTO t VALUES (7)").unwrap();
    cluster.stop();
    // the open session was ended by the fast shutdown; nobody answers now
    assert!(c.query_one("SELECT x FROM t", &[]).is_err());
    assert!(connect(&url).is_err());
    cluster.start_again();
    assert_eq!(cluster.url(), url);
    let x: i32 = connect(&url).unwrap().query_one("SELECT x FROM t", &[]).unwrap().get(0);
    assert_eq!(x, 7);
    // a crash (immediate stop) and recovery keep committed rows too
    cluster.kill();
    cluster.start_again();
    let x: i32 = connect(&url).unwrap().query_one("SELECT x FROM t", &[]).unwrap().get(0);
    assert_eq!(x, 7);
}

#[test]
fn a_test_database_is_empty() {
    let db = TestDb::new("testkit_fresh");
    let n: i64 =
        db.client().query_one("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'", &[]).unwrap().get(0);
    assert_eq!(n, 0);
}
