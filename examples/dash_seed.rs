//! Fill a data folder's database with a large history for the dashboard benchmark
//! (bench/dashboard.sh): exchange sessions with their requests and imports, orders with their
//! timelines, outbox messages. SQL generates the rows (recursive CTEs), so a million rows take
//! seconds.
//!
//! cargo run --release --example dash_seed -- DATA_DIR [REQUESTS] [ORDERS] [MESSAGES]

use diesel::connection::SimpleConnection;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(args.get(1).expect("DATA_DIR"));
    let requests: i64 = args
        .get(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let orders: i64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let messages: i64 = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(200_000);
    std::fs::create_dir_all(&dir).unwrap();
    let url = dir.join("obmen.db").to_string_lossy().to_string();
    let pool = obmen::store::open(&url, 1).expect("open");
    let mut c = pool.get().unwrap();
    obmen::store::migrate(&mut c).expect("migrate");
    let t = std::time::Instant::now();
    // 25 requests per session (checkauth, init, 20 file chunks, import ×2, complete).
    let sessions = (requests / 25).max(1);
    let now = chrono::Utc::now().timestamp_millis();
    let start = now - sessions * 60_000;
    let sql = format!(
        "BEGIN;
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {sessions})
        INSERT INTO exchange_sessions (id, sessid, exchange_type, client_addr, user_agent, login,
            created_at, last_seen_at, auth_timestamp, zip, file_limit, initialized, closed, files, failed)
        SELECT printf('s%031d', i), printf('x%031d', i), CASE WHEN i % 10 = 0 THEN 'sale' ELSE 'catalog' END,
            '10.0.' || (i % 200) || '.' || (i % 250), '1C+Enterprise/8.3', '1c',
            {start} + i * 60000, {start} + i * 60000 + 5000, ({start} + i * 60000) / 1000, 1, 104857600, 1, 1,
            'import0.xml' || char(10) || 'import1.xml', (i - 1) % 97 = 0
        FROM n;
        WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {requests} - 1)
        INSERT INTO exchange_requests (session_id, at, client_addr, method, exchange_type, mode,
            filename, bytes, http_status, answer, detail, duration_ms)
        SELECT printf('s%031d', i / 25 + 1), {start} + (i / 25 + 1) * 60000 + (i % 25) * 100, '10.0.0.1',
            CASE WHEN i % 25 BETWEEN 2 AND 21 THEN 'POST' ELSE 'GET' END, 'catalog',
            CASE i % 25 WHEN 0 THEN 'checkauth' WHEN 1 THEN 'init' WHEN 22 THEN 'import' WHEN 23 THEN 'import' WHEN 24 THEN 'complete' ELSE 'file' END,
            CASE WHEN i % 25 BETWEEN 2 AND 21 THEN 'import' || (i % 2) || '.xml' ELSE NULL END,
            CASE WHEN i % 25 BETWEEN 2 AND 21 THEN 204800 ELSE 0 END, 200,
            CASE WHEN i % 25 = 23 AND (i / 25) % 97 = 0 THEN 'failure' ELSE 'success' END,
            CASE WHEN i % 25 = 23 AND (i / 25) % 97 = 0 THEN 'Ошибка в XML: строка 10, столбец 5' ELSE NULL END,
            3
        FROM n;
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {sessions})
        INSERT INTO import_jobs (session_id, filename, path, trigger, state, kind, created_at, started_at,
            finished_at, bytes, goods_total, offers_total, groups, properties, price_types, warehouses,
            goods, offers, documents, created, updated, unchanged, deleted, error, error_line, error_column)
        SELECT printf('s%031d', i), 'import0.xml', '/nonexistent', 'import',
            CASE WHEN (i - 1) % 97 = 0 THEN 'failed' ELSE 'done' END, 'catalog',
            {start} + i * 60000, {start} + i * 60000, {start} + i * 60000 + 900, 2048000, 0, 0, 5, 3, 1, 1,
            1000, 0, 0, i % 7, i % 13, 1000 - i % 20, 0,
            CASE WHEN (i - 1) % 97 = 0 THEN 'Ошибка в XML' ELSE NULL END,
            CASE WHEN (i - 1) % 97 = 0 THEN 10 ELSE NULL END, CASE WHEN (i - 1) % 97 = 0 THEN 5 ELSE NULL END
        FROM n;
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {orders})
        INSERT INTO orders (number, channel, external_id, date, currency, total, status, customer,
            delivery, requisites, version, exported_version, created_at, updated_at)
        SELECT printf('OB-%07d', i), CASE WHEN i % 3 = 0 THEN 'api' ELSE 'ozon' END, printf('P-%09d', i),
            '2026-11-20T10:00:00Z', 'RUB', 100000 + i, CASE i % 5 WHEN 0 THEN 'new' WHEN 1 THEN 'confirmed' WHEN 2 THEN 'ready_to_ship' WHEN 3 THEN 'shipped' ELSE 'cancelled' END,
            '{{\"name\": \"Покупатель ' || i || '\", \"phone\": \"+7900' || i || '\"}}', NULL, '{{}}',
            2, CASE WHEN i % 50 = 0 THEN 1 ELSE 2 END, {now} - ({orders} - i) * 1000, {now} - ({orders} - i) * 1000
        FROM n;
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {orders} * 3)
        INSERT INTO order_events (order_id, at, source, kind, message, data)
        SELECT (i - 1) / 3 + 1, {now} - ({orders} * 3 - i) * 300, CASE i % 3 WHEN 1 THEN 'ozon' WHEN 2 THEN '1c' ELSE 'api' END,
            CASE i % 3 WHEN 1 THEN 'created' WHEN 2 THEN 'exported' ELSE 'status' END, 'Событие ' || i, NULL
        FROM n;
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {messages})
        INSERT INTO outbox (target, kind, key, payload, state, attempts, next_attempt_at, last_error,
            order_id, created_at, updated_at, done_at)
        SELECT CASE WHEN i % 4 = 0 THEN 'cdek' ELSE 'ozon' END, CASE WHEN i % 4 = 0 THEN 'cdek.create' ELSE 'ozon.stock' END,
            'key-' || i, '{{\"offer_id\": \"A-' || i || '\", \"stock\": ' || (i % 100) || '}}',
            CASE WHEN i % 100 = 0 THEN 'dead' WHEN i % 37 = 0 THEN 'failed' ELSE 'done' END,
            CASE WHEN i % 100 = 0 THEN 10 ELSE 1 END, {now} + 3600000,
            CASE WHEN i % 100 = 0 OR i % 37 = 0 THEN 'HTTP 500 from the simulator' ELSE NULL END,
            CASE WHEN i % 4 = 0 THEN i % {orders} + 1 ELSE NULL END,
            {now} - ({messages} - i) * 100, {now} - ({messages} - i) * 100, NULL
        FROM n;
        COMMIT;
        ANALYZE;"
    );
    c.batch_execute(&sql).expect("seed");
    println!(
        "{{\"sessions\": {sessions}, \"requests\": {requests}, \"orders\": {orders}, \"messages\": {messages}, \"seconds\": {:.1}}}",
        t.elapsed().as_secs_f64()
    );
}
