//! Diesel table definitions (kept in step with migrations/sqlite by hand).

diesel::table! {
    settings (key) {
        key -> Text,
        value -> Text,
        updated_at -> BigInt,
    }
}

diesel::table! {
    exchange_sessions (id) {
        id -> Text,
        sessid -> Text,
        exchange_type -> Text,
        client_addr -> Text,
        user_agent -> Nullable<Text>,
        login -> Text,
        created_at -> BigInt,
        last_seen_at -> BigInt,
        auth_timestamp -> BigInt,
        version -> Nullable<Text>,
        cml_version -> Nullable<Text>,
        zip -> Bool,
        file_limit -> BigInt,
        initialized -> Bool,
        closed -> Bool,
        /// Names of the files sent and imported in the session, one per line (for the search).
        files -> Text,
        /// A failure answer or a failed import happened in the session.
        failed -> Bool,
    }
}

diesel::table! {
    exchange_requests (id) {
        id -> Integer,
        session_id -> Nullable<Text>,
        at -> BigInt,
        client_addr -> Text,
        method -> Text,
        exchange_type -> Nullable<Text>,
        mode -> Nullable<Text>,
        filename -> Nullable<Text>,
        bytes -> BigInt,
        http_status -> Integer,
        answer -> Text,
        detail -> Nullable<Text>,
        duration_ms -> BigInt,
    }
}

diesel::table! {
    uploaded_files (id) {
        id -> Integer,
        session_id -> Text,
        name -> Text,
        original_name -> Text,
        stored_path -> Text,
        bytes -> BigInt,
        chunks -> Integer,
        is_archive -> Bool,
        state -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
        error -> Nullable<Text>,
    }
}

diesel::table! {
    import_jobs (id) {
        id -> Integer,
        session_id -> Text,
        filename -> Text,
        path -> Text,
        trigger -> Text,
        state -> Text,
        kind -> Nullable<Text>,
        created_at -> BigInt,
        started_at -> Nullable<BigInt>,
        finished_at -> Nullable<BigInt>,
        bytes -> BigInt,
        goods_total -> BigInt,
        offers_total -> BigInt,
        groups -> Integer,
        properties -> Integer,
        price_types -> Integer,
        warehouses -> Integer,
        goods -> Integer,
        offers -> Integer,
        documents -> Integer,
        created -> Integer,
        updated -> Integer,
        unchanged -> Integer,
        deleted -> Integer,
        only_changes -> Nullable<Bool>,
        error -> Nullable<Text>,
        error_line -> Nullable<BigInt>,
        error_column -> Nullable<BigInt>,
        owner -> Nullable<Text>,
        lease_until -> Nullable<BigInt>,
    }
}

diesel::table! {
    catalog_sections (kind, id) {
        id -> Text,
        kind -> Text,
        name -> Nullable<Text>,
        classifier_id -> Nullable<Text>,
        only_changes -> Nullable<Bool>,
        seen_at -> BigInt,
    }
}

diesel::table! {
    catalog_groups (id) {
        id -> Text,
        parent_id -> Nullable<Text>,
        name -> Text,
        deleted -> Bool,
        hash -> Text,
        created_at -> BigInt,
        changed_at -> BigInt,
        seen_at -> BigInt,
    }
}

diesel::table! {
    properties (id) {
        id -> Text,
        name -> Text,
        value_type -> Nullable<Text>,
        for_goods -> Nullable<Bool>,
        for_offers -> Nullable<Bool>,
        multiple -> Nullable<Bool>,
        deleted -> Bool,
        hash -> Text,
        created_at -> BigInt,
        changed_at -> BigInt,
        seen_at -> BigInt,
    }
}

diesel::table! {
    property_values (property_id, value_id) {
        property_id -> Text,
        value_id -> Text,
        value -> Text,
    }
}

diesel::table! {
    price_types (id) {
        id -> Text,
        name -> Text,
        currency -> Nullable<Text>,
        tax_name -> Nullable<Text>,
        tax_included -> Nullable<Bool>,
        deleted -> Bool,
        hash -> Text,
        created_at -> BigInt,
        changed_at -> BigInt,
        seen_at -> BigInt,
    }
}

diesel::table! {
    warehouses (id) {
        id -> Text,
        name -> Nullable<Text>,
        address -> Nullable<Text>,
        defined -> Bool,
        deleted -> Bool,
        hash -> Text,
        created_at -> BigInt,
        changed_at -> BigInt,
        seen_at -> BigInt,
    }
}

diesel::table! {
    goods (id) {
        id -> Text,
        article -> Nullable<Text>,
        name -> Nullable<Text>,
        data -> Text,
        hash -> Text,
        deleted -> Bool,
        active -> Bool,
        created_at -> BigInt,
        changed_at -> BigInt,
        seen_at -> BigInt,
    }
}

diesel::table! {
    images (good_id, path) {
        good_id -> Text,
        path -> Text,
        position -> Integer,
    }
}

diesel::table! {
    offers (id) {
        id -> Text,
        good_id -> Text,
        article -> Nullable<Text>,
        name -> Nullable<Text>,
        quantity -> Nullable<Text>,
        by_warehouse -> Bool,
        data -> Text,
        hash -> Text,
        deleted -> Bool,
        active -> Bool,
        created_at -> BigInt,
        changed_at -> BigInt,
        seen_at -> BigInt,
    }
}

diesel::table! {
    prices (offer_id, price_type_id) {
        offer_id -> Text,
        price_type_id -> Text,
        value -> Text,
        currency -> Nullable<Text>,
        unit -> Nullable<Text>,
        coefficient -> Nullable<Text>,
        presentation -> Nullable<Text>,
        changed_at -> BigInt,
    }
}

diesel::table! {
    stock (offer_id, warehouse_id) {
        offer_id -> Text,
        warehouse_id -> Text,
        quantity -> Text,
        changed_at -> BigInt,
    }
}

diesel::table! {
    deletions (id) {
        id -> Integer,
        entity -> Text,
        entity_id -> Text,
        reason -> Text,
        job_id -> Nullable<BigInt>,
        at -> BigInt,
    }
}

diesel::table! {
    shipments (id) {
        id -> Integer,
        order_id -> Integer,
        order_number -> Text,
        carrier -> Text,
        state -> Text,
        carrier_ref -> Nullable<Text>,
        carrier_number -> Nullable<Text>,
        tracking_number -> Nullable<Text>,
        status_code -> Nullable<Text>,
        status_name -> Nullable<Text>,
        waybill_url -> Nullable<Text>,
        error -> Nullable<Text>,
        data -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    schedule_runs (job) {
        job -> Text,
        last_at -> BigInt,
        owner -> Text,
    }
}

// migrations/*/2026-12-02-000100_exchange_lockout
diesel::table! {
    exchange_auth_failures (client_addr) {
        client_addr -> Text,
        failures -> Integer,
        last_failed_at -> BigInt,
        locked_until -> Nullable<BigInt>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    exchange_auth_failures,
    schedule_runs,
    settings,
    exchange_sessions,
    exchange_requests,
    uploaded_files,
    import_jobs,
    catalog_sections,
    catalog_groups,
    properties,
    property_values,
    price_types,
    warehouses,
    goods,
    images,
    offers,
    prices,
    stock,
    deletions,
);

// --- orders (migrations/sqlite/2026-11-25-000010_orders) ---------------------------------------

diesel::table! {
    orders (id) {
        id -> Integer,
        number -> Text,
        channel -> Text,
        external_id -> Nullable<Text>,
        date -> Text,
        currency -> Text,
        total -> BigInt,
        status -> Text,
        customer -> Text,
        delivery -> Nullable<Text>,
        payment -> Nullable<Text>,
        comment -> Nullable<Text>,
        requisites -> Text,
        onec_id -> Nullable<Text>,
        onec_number -> Nullable<Text>,
        onec_date -> Nullable<Text>,
        onec_posted -> Bool,
        onec_paid -> Bool,
        onec_payment_number -> Nullable<Text>,
        onec_payment_date -> Nullable<Text>,
        onec_shipped -> Bool,
        onec_shipment_number -> Nullable<Text>,
        onec_shipment_date -> Nullable<Text>,
        onec_cancelled -> Bool,
        onec_deleted -> Bool,
        onec_status -> Nullable<Text>,
        onec_updated_at -> Nullable<BigInt>,
        version -> BigInt,
        exported_version -> BigInt,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    order_lines (order_id, position) {
        order_id -> Integer,
        position -> Integer,
        offer_id -> Nullable<Text>,
        article -> Nullable<Text>,
        name -> Text,
        quantity -> BigInt,
        price -> BigInt,
        discount -> BigInt,
        vat -> Nullable<Text>,
        sum -> BigInt,
    }
}

diesel::table! {
    order_events (id) {
        id -> Integer,
        order_id -> Integer,
        at -> BigInt,
        source -> Text,
        kind -> Text,
        message -> Text,
        data -> Nullable<Text>,
    }
}

diesel::table! {
    order_exports (session_id, order_id) {
        session_id -> Text,
        order_id -> Integer,
        version -> BigInt,
        at -> BigInt,
    }
}

diesel::table! {
    order_unknown (onec_id) {
        onec_id -> Text,
        number -> Nullable<Text>,
        date -> Nullable<Text>,
        total -> Nullable<Text>,
        data -> Text,
        first_seen_at -> BigInt,
        last_seen_at -> BigInt,
        times -> Integer,
    }
}

diesel::table! {
    order_imports (id) {
        id -> Integer,
        session_id -> Text,
        filename -> Text,
        hash -> Text,
        documents -> Integer,
        matched -> Integer,
        changed -> Integer,
        unknown -> Integer,
        at -> BigInt,
    }
}

diesel::joinable!(order_lines -> orders (order_id));
diesel::joinable!(order_events -> orders (order_id));

diesel::allow_tables_to_appear_in_same_query!(
    orders,
    order_lines,
    order_events,
    order_exports,
    order_unknown,
    order_imports,
);

// --- relay and connectors (migrations/sqlite/2026-11-26-000020_relay) ------------------------

diesel::table! {
    outbox (id) {
        id -> Integer,
        target -> Text,
        kind -> Text,
        key -> Text,
        payload -> Text,
        state -> Text,
        attempts -> Integer,
        next_attempt_at -> BigInt,
        lease_until -> Nullable<BigInt>,
        lease_owner -> Nullable<Text>,
        last_error -> Nullable<Text>,
        response -> Nullable<Text>,
        last_call_id -> Nullable<BigInt>,
        order_id -> Nullable<Integer>,
        created_at -> BigInt,
        updated_at -> BigInt,
        done_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    api_calls (id) {
        id -> Integer,
        target -> Text,
        endpoint -> Text,
        at -> BigInt,
        duration_ms -> BigInt,
        http_status -> Nullable<Integer>,
        outcome -> Text,
        messages -> Integer,
        error -> Nullable<Text>,
        request -> Nullable<Text>,
        response -> Nullable<Text>,
    }
}

diesel::table! {
    ozon_offers (offer_ref) {
        offer_ref -> Text,
        offer_id -> Text,
        article_now -> Nullable<Text>,
        product_id -> Nullable<BigInt>,
        sku -> Nullable<BigInt>,
        card_hash -> Nullable<Text>,
        card_state -> Nullable<Text>,
        card_task_id -> Nullable<BigInt>,
        card_errors -> Nullable<Text>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    ozon_stock_state (offer_ref, warehouse_id) {
        offer_ref -> Text,
        warehouse_id -> BigInt,
        queued -> BigInt,
        acked -> Nullable<BigInt>,
        acked_at -> Nullable<BigInt>,
        error -> Nullable<Text>,
    }
}

diesel::table! {
    ozon_price_state (offer_ref) {
        offer_ref -> Text,
        queued -> Text,
        acked -> Nullable<Text>,
        acked_at -> Nullable<BigInt>,
        error -> Nullable<Text>,
    }
}

diesel::table! {
    ozon_postings (posting_number) {
        posting_number -> Text,
        order_number -> Nullable<Text>,
        status -> Text,
        data -> Text,
        updated_at -> BigInt,
    }
}

diesel::table! {
    ozon_push (hash) {
        hash -> Text,
        message_type -> Text,
        posting_number -> Nullable<Text>,
        body -> Text,
        at -> BigInt,
    }
}

diesel::table! {
    order_documents (id) {
        id -> Integer,
        order_id -> Integer,
        kind -> Text,
        name -> Text,
        path -> Text,
        content_type -> Text,
        bytes -> BigInt,
        created_at -> BigInt,
        token -> Text,
    }
}

diesel::table! {
    reconciliation_reports (id) {
        id -> Integer,
        target -> Text,
        started_at -> BigInt,
        finished_at -> Nullable<BigInt>,
        state -> Text,
        checked -> Integer,
        differences -> Integer,
        error -> Nullable<Text>,
    }
}

diesel::table! {
    reconciliation_items (report_id, position) {
        report_id -> Integer,
        position -> Integer,
        offer_ref -> Nullable<Text>,
        offer_id -> Text,
        field -> Text,
        ours -> Nullable<Text>,
        theirs -> Nullable<Text>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    outbox,
    api_calls,
    ozon_offers,
    ozon_stock_state,
    ozon_price_state,
    ozon_postings,
    ozon_push,
    order_documents,
    shipments,
    reconciliation_reports,
    reconciliation_items,
    orders,
    offers,
);

// --- dashboard (migrations/sqlite/2026-11-28-000050_dashboard) ---------------------------------

diesel::table! {
    users (id) {
        id -> Integer,
        name -> Text,
        role -> Text,
        password_hash -> Text,
        failed_logins -> Integer,
        locked_until -> Nullable<BigInt>,
        disabled -> Bool,
        created_at -> BigInt,
        updated_at -> BigInt,
        last_login_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    web_sessions (token_hash) {
        token_hash -> Text,
        user_id -> Integer,
        csrf -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        last_seen_at -> BigInt,
        client_addr -> Text,
    }
}

diesel::table! {
    audit_log (id) {
        id -> Integer,
        at -> BigInt,
        username -> Text,
        action -> Text,
        target -> Nullable<Text>,
        before -> Nullable<Text>,
        after -> Nullable<Text>,
        client_addr -> Nullable<Text>,
    }
}

diesel::joinable!(web_sessions -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(users, web_sessions, audit_log);

// --- alerts (migrations/sqlite/2026-11-29-000060_alerts) ---------------------------------------

diesel::table! {
    alert_rules (rule) {
        rule -> Text,
        enabled -> Bool,
        threshold -> BigInt,
        channels -> Text,
        active -> Bool,
        episode -> Integer,
        cursor -> BigInt,
        last_checked_at -> Nullable<BigInt>,
        last_fired_at -> Nullable<BigInt>,
        updated_at -> BigInt,
    }
}

diesel::table! {
    alert_channels (id) {
        id -> Integer,
        kind -> Text,
        name -> Text,
        config -> Text,
        enabled -> Bool,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    alert_events (id) {
        id -> Integer,
        rule -> Text,
        fingerprint -> Text,
        at -> BigInt,
        title -> Text,
        text -> Text,
        message_ids -> Text,
    }
}
