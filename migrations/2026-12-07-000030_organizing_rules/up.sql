-- Users' organizing rules (issue 21): ordered rules of conditions and an
-- action (`domain::rule`, `db::rules`). The definition is the domain's JSON
-- (`RuleDefinition`): conditions and actions are open-ended and always read
-- and written whole, never queried inside.
--
-- `version` is the rule's own (its etag; file records name it);
-- `rule_sets.version` is the user's whole set's, one more at every create,
-- update or delete of any of their rules (in the same transaction), so an
-- operation can say which rule set its plan used.
CREATE TABLE rules (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    display_name text NOT NULL,
    position integer NOT NULL DEFAULT 0,
    definition jsonb NOT NULL,
    version bigint NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The order rules are tried in, per user.
CREATE INDEX rules_user_order_idx ON rules (user_id, position, created_at, id);

CREATE TABLE rule_sets (
    user_id uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    version bigint NOT NULL
);

-- The rule set version an operation's plan used (NULL: no rules applied).
ALTER TABLE operations ADD COLUMN rule_set_version bigint;

-- The rule (and its version) that decided a record; NULL when none did. No
-- foreign key: a record keeps naming a rule deleted since.
ALTER TABLE file_records ADD COLUMN rule_id uuid, ADD COLUMN rule_version bigint;
