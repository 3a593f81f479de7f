// @generated automatically by Diesel CLI.

diesel::table! {
    api_keys (id) {
        id -> Uuid,
        user_id -> Uuid,
        name -> Text,
        prefix -> Text,
        token_hash -> Bytea,
        scopes -> Array<Nullable<Text>>,
        created_at -> Timestamptz,
        last_used_at -> Nullable<Timestamptz>,
        expires_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    audit_log (id) {
        id -> Int8,
        user_id -> Nullable<Uuid>,
        action -> Text,
        target -> Nullable<Text>,
        outcome -> Text,
        client_ip -> Nullable<Text>,
        request_id -> Nullable<Text>,
        detail -> Jsonb,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    automations (id) {
        id -> Uuid,
        user_id -> Uuid,
        display_name -> Text,
        trigger_kind -> Text,
        cron -> Nullable<Text>,
        time_zone -> Nullable<Text>,
        folder_path -> Nullable<Text>,
        quiet_period_ms -> Int8,
        kind -> Text,
        source_path -> Text,
        destination_path -> Text,
        dry_run -> Bool,
        options -> Jsonb,
        paused -> Bool,
        next_run_at -> Nullable<Timestamptz>,
        pending_since -> Nullable<Timestamptz>,
        folder_fingerprint -> Nullable<Text>,
        last_run_at -> Nullable<Timestamptz>,
        last_operation_id -> Nullable<Uuid>,
        run_count -> Int8,
        version -> Int8,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        last_error -> Nullable<Text>,
    }
}

diesel::table! {
    categories (id) {
        id -> Uuid,
        user_id -> Nullable<Uuid>,
        name -> Text,
        extensions -> Array<Nullable<Text>>,
        globs -> Array<Nullable<Text>>,
        color -> Nullable<Text>,
        icon -> Nullable<Text>,
        priority -> Int4,
        built_in -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    duplicate_group_totals (operation_id) {
        operation_id -> Uuid,
        groups -> Int8,
        smallest_size_bytes -> Int8,
    }
}

diesel::table! {
    duplicate_groups (operation_id, keeper_seq) {
        operation_id -> Uuid,
        keeper_seq -> Int8,
        content_hash -> Bytea,
        size_bytes -> Int8,
        file_count -> Int8,
        reclaimable_bytes -> Int8,
    }
}

diesel::table! {
    file_names (operation_id, seq) {
        operation_id -> Uuid,
        seq -> Int8,
        names -> Text,
        content_hash -> Nullable<Bytea>,
    }
}

diesel::table! {
    file_names_pending (operation_id) {
        operation_id -> Uuid,
        since -> Timestamptz,
    }
}

diesel::table! {
    file_records (operation_id, seq) {
        operation_id -> Uuid,
        seq -> Int8,
        original_path -> Text,
        new_path -> Nullable<Text>,
        size_bytes -> Int8,
        modified_at -> Nullable<Timestamptz>,
        device -> Nullable<Int8>,
        inode -> Nullable<Int8>,
        content_hash -> Nullable<Bytea>,
        category -> Text,
        duplicate_of -> Nullable<Int8>,
        status -> Text,
        reason -> Nullable<Text>,
        created_at -> Timestamptz,
        mtime_ns -> Nullable<Int8>,
        ctime_ns -> Nullable<Int8>,
        user_id -> Uuid,
        taken_from_metadata -> Nullable<Bool>,
        rule_id -> Nullable<Uuid>,
        rule_version -> Nullable<Int8>,
    }
}

diesel::table! {
    hash_cache (user_id, dev, ino) {
        user_id -> Uuid,
        dev -> Int8,
        ino -> Int8,
        size -> Int8,
        mtime_ns -> Int8,
        ctime_ns -> Int8,
        head_hash -> Nullable<Bytea>,
        full_hash -> Nullable<Bytea>,
        seen_at -> Timestamptz,
    }
}

diesel::table! {
    operation_memos (operation_id, kind) {
        operation_id -> Uuid,
        kind -> Text,
        version -> Text,
        value -> Bytea,
        computed_at -> Timestamptz,
    }
}

diesel::table! {
    operations (id) {
        id -> Uuid,
        user_id -> Uuid,
        kind -> Text,
        state -> Text,
        phase -> Nullable<Text>,
        source_path -> Text,
        destination_path -> Text,
        dry_run -> Bool,
        options -> Jsonb,
        files_scanned -> Int8,
        files_planned -> Int8,
        files_moved -> Int8,
        files_skipped -> Int8,
        files_failed -> Int8,
        duplicates_found -> Int8,
        bytes_scanned -> Int8,
        bytes_moved -> Int8,
        reclaimable_bytes -> Int8,
        undo_of -> Nullable<Uuid>,
        request_id -> Nullable<Text>,
        worker_id -> Nullable<Text>,
        heartbeat_at -> Nullable<Timestamptz>,
        cancel_requested -> Bool,
        applied_cursor -> Int8,
        error -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        started_at -> Nullable<Timestamptz>,
        finished_at -> Nullable<Timestamptz>,
        phase_seconds -> Jsonb,
        rule_set_version -> Nullable<Int8>,
        trigger_kind -> Text,
        automation_id -> Nullable<Uuid>,
        bytes_hashed -> Int8,
        trace_parent -> Nullable<Text>,
    }
}

diesel::table! {
    refresh_tokens (id) {
        id -> Uuid,
        user_id -> Uuid,
        family_id -> Uuid,
        token_hash -> Bytea,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
        replaced_by -> Nullable<Uuid>,
    }
}

diesel::table! {
    rule_sets (user_id) {
        user_id -> Uuid,
        version -> Int8,
    }
}

diesel::table! {
    rules (id) {
        id -> Uuid,
        user_id -> Uuid,
        display_name -> Text,
        position -> Int4,
        definition -> Jsonb,
        version -> Int8,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    trash_items (id) {
        id -> Uuid,
        user_id -> Uuid,
        original_path -> Text,
        trash_path -> Text,
        kind -> Text,
        size_bytes -> Int8,
        operation_id -> Nullable<Uuid>,
        operation_seq -> Nullable<Int8>,
        deleted_at -> Timestamptz,
        restored_at -> Nullable<Timestamptz>,
        restored_path -> Nullable<Text>,
        purged_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    upload_sessions (id) {
        id -> Uuid,
        user_id -> Uuid,
        path -> Text,
        size_bytes -> Int8,
        content_hash -> Nullable<Bytea>,
        conflict_policy -> Text,
        modify_time -> Nullable<Timestamptz>,
        committed_offset -> Int8,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
    }
}

diesel::table! {
    users (id) {
        id -> Uuid,
        email -> Text,
        password_hash -> Text,
        display_name -> Text,
        role -> Text,
        disabled -> Bool,
        storage_used_bytes -> Int8,
        storage_quota_bytes -> Int8,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        last_login_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    watch_tokens (token_hash) {
        token_hash -> Bytea,
        user_id -> Uuid,
        operation_id -> Uuid,
        expires_at -> Timestamptz,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(api_keys -> users (user_id));
diesel::joinable!(audit_log -> users (user_id));
diesel::joinable!(automations -> operations (last_operation_id));
diesel::joinable!(automations -> users (user_id));
diesel::joinable!(categories -> users (user_id));
diesel::joinable!(file_names -> operations (operation_id));
diesel::joinable!(file_names_pending -> operations (operation_id));
diesel::joinable!(file_records -> operations (operation_id));
diesel::joinable!(hash_cache -> users (user_id));
diesel::joinable!(operation_memos -> operations (operation_id));
diesel::joinable!(operations -> users (user_id));
diesel::joinable!(refresh_tokens -> users (user_id));
diesel::joinable!(rule_sets -> users (user_id));
diesel::joinable!(rules -> users (user_id));
diesel::joinable!(trash_items -> operations (operation_id));
diesel::joinable!(trash_items -> users (user_id));
diesel::joinable!(upload_sessions -> users (user_id));
diesel::joinable!(watch_tokens -> operations (operation_id));
diesel::joinable!(watch_tokens -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    api_keys,
    audit_log,
    automations,
    categories,
    duplicate_group_totals,
    duplicate_groups,
    file_names,
    file_names_pending,
    file_records,
    hash_cache,
    operation_memos,
    operations,
    refresh_tokens,
    rule_sets,
    rules,
    trash_items,
    upload_sessions,
    users,
    watch_tokens,
);
