-- Quorum's projections: DuckDB views over the `events` relation (Parquet snapshots plus
-- the live tail of the ledger, defined by projections/duck.py before this script runs).
-- docs/projections.md documents every view and column; keep the two in step.
-- Functions named quorum_* are Quorum's agreement math (projections/agreement.py),
-- registered on every connection Quorum opens.

-- The position of an event in the ledger: stream sequence, then place in its message.
CREATE MACRO _event_order(seq, position) AS seq * 1048576 + position;

-- datasets: the latest configuration of every dataset, and whether it was dropped since.
CREATE VIEW datasets AS
WITH configs AS (
    SELECT dataset, recipe, view_id, config, recorded_at, _event_order(seq, position) AS ord
    FROM events WHERE kind = 'dataset_configured'
),
drops AS (
    SELECT dataset, max(_event_order(seq, position)) AS ord, max(recorded_at) AS recorded_at
    FROM events WHERE kind = 'dataset_dropped' GROUP BY dataset
),
latest AS (
    SELECT dataset, arg_max(recipe, ord) AS recipe, arg_max(view_id, ord) AS view_id,
           arg_max(config, ord) AS config, max(recorded_at) AS configured_ms, max(ord) AS ord
    FROM configs GROUP BY dataset
)
SELECT
    l.dataset,
    l.recipe,
    l.view_id,
    l.config,
    json_extract_string(l.config, '$.labels[*]') AS labels,
    l.config ->> '$.choice_style' AS choice_style,
    coalesce(l.config ->> '$.routing.feed_overlap', 'false') NOT IN ('false', '0', '0.0', '', '[]', '{}')
        AS feed_overlap,
    coalesce(nullif(TRY_CAST(l.config ->> '$.routing.annotations_per_task' AS BIGINT), 0), 1)
        AS annotations_per_task,
    make_timestamp(l.configured_ms * 1000) AS configured_at,
    d.ord IS NOT NULL AND d.ord > l.ord AS dropped,
    make_timestamp(d.recorded_at * 1000) AS dropped_at
FROM latest l LEFT JOIN drops d USING (dataset);

-- _answer_keys: which events make up `answers` (see below); Quorum's own connections keep
-- it as a temporary table so the agreement queries don't recompute it.
CREATE VIEW _answer_keys AS
WITH control AS MATERIALIZED (
    SELECT dataset, kind, min(_event_order(seq, position)) AS ord, any_value(config) AS config
    FROM events WHERE kind IN ('dataset_configured', 'dataset_dropped')
    GROUP BY dataset, kind, event_id
),
last_drop AS (
    SELECT dataset, max(ord) AS ord FROM control WHERE kind = 'dataset_dropped' GROUP BY dataset
),
answer_events AS (
    -- Every answer since the dataset's last drop (the same answer given again after a
    -- drop counts). A keyed answer (id `dec-…`, named by the client's decision key) counts
    -- at its first place only, so its retry adds nothing at any delay; an unkeyed one
    -- (`ans-…`, named by its content) counts wherever it appears. Within one (task,
    -- session) group a 64-bit hash of the id is as good as the id (two of a session's few
    -- answers to one task colliding: ~1e-19) at a fraction of the memory.
    SELECT e.dataset, e.task_hash, e.session, hash(e.event_id) AS id,
           min(_event_order(e.seq, e.position)) AS ord
    FROM events e LEFT JOIN last_drop d USING (dataset)
    WHERE e.kind = 'answer_recorded' AND (d.ord IS NULL OR _event_order(e.seq, e.position) > d.ord)
    GROUP BY e.dataset, e.task_hash, e.session, id,
             CASE WHEN starts_with(e.event_id, 'dec-') THEN 0 ELSE _event_order(e.seq, e.position) END
),
decisions AS (
    -- An answer identical to the session's current one on the task (the same id just
    -- before it) changes nothing; any other answer is the session's new decision.
    SELECT dataset, task_hash, session, ord,
           id IS DISTINCT FROM lag(id) OVER (PARTITION BY dataset, task_hash, session ORDER BY ord) AS changes
    FROM answer_events
),
routing AS (
    -- The answers-per-task cap each configuration puts in force.
    SELECT dataset, ord,
        CASE WHEN coalesce(config ->> '$.routing.feed_overlap', 'false')
                  NOT IN ('false', '0', '0.0', '', '[]', '{}') THEN NULL
             ELSE coalesce(nullif(TRY_CAST(config ->> '$.routing.annotations_per_task' AS BIGINT), 0), 1)
        END AS cap
    FROM control WHERE kind = 'dataset_configured'
),
per_session AS MATERIALIZED (
    SELECT dataset, task_hash, session, min(ord) AS first_ord, max(ord) FILTER (WHERE changes) AS last_ord
    FROM decisions
    GROUP BY dataset, task_hash, session
),
arrivals AS (
    -- Sessions in the order they first answered each task.
    SELECT dataset, task_hash, list(first_ord ORDER BY first_ord) AS firsts
    FROM per_session GROUP BY dataset, task_hash
),
configs AS (
    SELECT dataset, list({'ord': ord, 'cap': cap} ORDER BY ord) AS caps FROM routing GROUP BY dataset
),
capped AS (
    -- The cap in force when the task was first answered (routing can't change without a
    -- drop); before any configuration a task keeps one session, as the live path does.
    SELECT a.dataset, a.task_hash, a.firsts,
           list_filter(c.caps, lambda r: r.ord <= a.firsts[1]) AS before
    FROM arrivals a LEFT JOIN configs c USING (dataset)
)
SELECT p.dataset, p.task_hash, p.session, p.first_ord, p.last_ord,
       list_position(c.firsts, p.first_ord) AS arrival
FROM per_session p JOIN capped c USING (dataset, task_hash)
WHERE CASE WHEN coalesce(len(c.before), 0) = 0 THEN p.first_ord = c.firsts[1]
           WHEN c.before[-1].cap IS NULL THEN true
           ELSE len(c.firsts) <= c.before[-1].cap OR p.first_ord <= c.firsts[c.before[-1].cap] END;

-- answers: the current answer of every session to every task — the dataset as db-out
-- exports it: its latest decision (a keyed answer's retry and an answer identical to the
-- current one change nothing; see _answer_keys), a drop hides everything before it, and
-- without full overlap a task keeps only the first k sessions that answered it
-- (k = annotations_per_task in force when the task was first answered; 1 without
-- overlap or before any configuration).
CREATE VIEW answers AS
SELECT
    e.dataset,
    e.session,
    e.session_id,
    e.annotator,
    e.task_hash,
    e.input_hash,
    e.answer,
    e.view_id,
    e.label,
    e.accept,
    e.spans,
    e.example,
    make_timestamp(e.handed_out_at * 1000) AS handed_out_at,
    make_timestamp(e.recorded_at * 1000) AS answered_at,
    e.recorded_at AS answered_ms,
    e.event_id,
    e.seq,
    k.arrival,
    k.first_ord AS answer_order
FROM _answer_keys k JOIN events e
  ON e.dataset = k.dataset AND _event_order(e.seq, e.position) = k.last_ord;

-- dataset_examples: the dataset in Prodigy's terms, one row per db-out line.
CREATE VIEW dataset_examples AS
SELECT
    dataset,
    answer_order,
    example ->> '$.text' AS text,
    input_hash AS _input_hash,
    task_hash AS _task_hash,
    view_id AS _view_id,
    answer,
    answered_ms // 1000 AS _timestamp,
    session_id AS _annotator_id,
    session_id AS _session_id,
    session,
    annotator,
    label,
    accept,
    spans,
    example
FROM answers;

-- annotator_counts: current answers per dataset, session and day (UTC) of the answer.
CREATE VIEW annotator_counts AS
SELECT
    dataset,
    session,
    any_value(annotator) AS annotator,
    CAST(answered_at AS DATE) AS day,
    count(*) AS answers,
    count(*) FILTER (WHERE answer = 'accept') AS accept,
    count(*) FILTER (WHERE answer = 'reject') AS reject,
    count(*) FILTER (WHERE answer = 'ignore') AS ignore
FROM answers
GROUP BY dataset, session, day;

-- task_times: seconds from hand-out to answer, for answers whose hand-out time is known.
CREATE VIEW task_times AS
SELECT
    dataset,
    session,
    task_hash,
    answer,
    handed_out_at,
    answered_at,
    (answered_ms - epoch_ms(handed_out_at)) / 1000.0 AS seconds
FROM answers
WHERE handed_out_at IS NOT NULL;

-- agreement_ratings: one nominal rating per dataset, label, item and session, the input
-- of every label-agreement figure. `label` is NULL for the dataset's overall figure.
-- accept/reject views: the answer, overall and per task label. Single choice: the option
-- chosen (or '(rejected)'), overall; per option, whether it was chosen. Multiple choice:
-- per option whether it was chosen; overall pools every (task, option) as one item.
-- Ignored answers and rejected choice questions (per option) are no rating.
CREATE VIEW agreement_ratings AS
WITH decided AS MATERIALIZED (
    SELECT dataset, task_hash, session, answer, label, accept, view_id
    FROM answers
    WHERE answer IN ('accept', 'reject') AND view_id NOT IN ('ner_manual', 'spans_manual')
),
binary_decisions AS (
    SELECT * FROM decided WHERE view_id <> 'choice'
),
choices AS MATERIALIZED (
    SELECT * FROM decided WHERE view_id = 'choice'
),
multiple AS (
    -- Choice datasets answered with several options at once count as multiple choice.
    SELECT c.dataset,
           bool_or(coalesce(d.choice_style = 'multiple', false) OR len(c.accept) > 1) AS multiple
    FROM choices c LEFT JOIN datasets d USING (dataset) GROUP BY c.dataset
),
options AS MATERIALIZED (
    -- The task's options come from its example; only choice answers are parsed.
    SELECT a.dataset, a.task_hash, a.session, a.accept, m.multiple,
           unnest(json_extract_string(a.example, '$.options[*].id')) AS option
    FROM answers a JOIN multiple m USING (dataset)
    WHERE a.view_id = 'choice' AND a.answer = 'accept'
)
SELECT dataset, NULL::VARCHAR AS label, task_hash AS item, session, answer AS category FROM binary_decisions
UNION ALL
SELECT dataset, label, task_hash, session, answer FROM binary_decisions WHERE label IS NOT NULL
UNION ALL
SELECT c.dataset, NULL, c.task_hash, c.session,
       CASE WHEN c.answer = 'reject' THEN '(rejected)'
            WHEN len(c.accept) = 0 OR c.accept IS NULL THEN '(none)'
            ELSE array_to_string(list_sort(c.accept), '|') END
FROM choices c JOIN multiple m USING (dataset) WHERE NOT m.multiple
UNION ALL
SELECT dataset, option, task_hash, session,
       CASE WHEN list_contains(accept, option) THEN 'yes' ELSE 'no' END
FROM options
UNION ALL
SELECT dataset, NULL, CAST(hash(task_hash, option) >> 1 AS BIGINT), session,
       CASE WHEN list_contains(accept, option) THEN 'yes' ELSE 'no' END
FROM options WHERE multiple;

-- agreement_pairs: Cohen's kappa for every pair of sessions with the items both rated.
CREATE VIEW agreement_pairs AS
WITH ratings AS MATERIALIZED (
    SELECT * FROM agreement_ratings
),
cells AS (
    SELECT a.dataset, a.label, a.session AS session_a, b.session AS session_b,
           a.category AS category_a, b.category AS category_b, count(*) AS n
    FROM ratings a JOIN ratings b
      ON a.dataset = b.dataset AND a.item = b.item AND a.label IS NOT DISTINCT FROM b.label
     AND a.session < b.session
    GROUP BY ALL
),
figures AS (
    SELECT dataset, label, session_a, session_b,
           quorum_cohen_kappa(list({'a': category_a, 'b': category_b, 'n': n})) AS k
    FROM cells GROUP BY dataset, label, session_a, session_b
)
SELECT dataset, label, session_a, session_b, k.value AS kappa, k.n_items, k.observed, k.expected, k.note
FROM figures;

-- agreement_summary: Fleiss' kappa and Krippendorff's alpha (nominal) over every item
-- with two or more ratings, per dataset and label (NULL: overall).
CREATE VIEW agreement_summary AS
WITH ratings AS MATERIALIZED (
    SELECT * FROM agreement_ratings
),
per_item AS MATERIALIZED (
    -- m: each item's number of ratings.
    SELECT dataset, label, item, count(*) AS m FROM ratings GROUP BY dataset, label, item
),
per_cell AS (
    -- n: each item's ratings in each category.
    SELECT dataset, label, item, category, count(*) AS n FROM ratings GROUP BY ALL
),
stats AS (
    SELECT dataset, label,
           list({'category': category, 'total': total, 'within': within, 'pairs': pairs}) AS cells
    FROM (
        SELECT c.dataset, c.label, c.category, sum(c.n) AS total,
               sum(c.n * (c.n - 1) / (i.m - 1)) AS within,
               sum(c.n * (c.n - 1) / (i.m * (i.m - 1))) AS pairs
        FROM per_cell c JOIN per_item i
          ON i.dataset = c.dataset AND i.item = c.item AND i.label IS NOT DISTINCT FROM c.label
        WHERE i.m >= 2
        GROUP BY c.dataset, c.label, c.category
    )
    GROUP BY dataset, label
),
scopes AS (
    SELECT dataset, label, count(*) AS n_rated, count(*) FILTER (WHERE m >= 2) AS n_items
    FROM per_item GROUP BY dataset, label
),
sessions AS (
    SELECT dataset, label, count(DISTINCT session) AS n_sessions FROM ratings GROUP BY dataset, label
)
SELECT s.dataset, s.label, n.n_sessions, s.n_rated, s.n_items,
       quorum_fleiss_kappa(coalesce(t.cells, []), s.n_items) AS fleiss,
       quorum_krippendorff_alpha(coalesce(t.cells, []), s.n_items) AS krippendorff
FROM scopes s
JOIN sessions n ON n.dataset = s.dataset AND n.label IS NOT DISTINCT FROM s.label
LEFT JOIN stats t ON t.dataset = s.dataset AND t.label IS NOT DISTINCT FROM s.label;

-- answer_spans: one row per span of a current accepted answer in a span view.
CREATE VIEW answer_spans AS
SELECT a.dataset, a.session, a.task_hash, s.start, s."end", s.label, s.token_start, s.token_end
FROM answers a, unnest(a.spans) AS t(s)
WHERE a.answer = 'accept' AND a.view_id IN ('ner_manual', 'spans_manual');

-- span_agreement: pairwise span precision / recall / F1 (session_a as reference), exact
-- (start, end, label) and token overlap (tokens, or characters without token offsets),
-- per label and overall (label NULL), over the tasks both sessions accepted.
CREATE VIEW span_agreement AS
WITH docs AS (
    SELECT dataset, task_hash, session FROM answers
    WHERE answer = 'accept' AND view_id IN ('ner_manual', 'spans_manual')
),
pairs AS (
    SELECT a.dataset, a.task_hash, a.session AS session_a, b.session AS session_b
    FROM docs a JOIN docs b
      ON a.dataset = b.dataset AND a.task_hash = b.task_hash AND a.session < b.session
),
n_items AS (
    SELECT dataset, session_a, session_b, count(*) AS n_items FROM pairs GROUP BY ALL
),
units AS (
    SELECT DISTINCT dataset, task_hash, session, 'exact' AS mode, label, start AS u1, "end" AS u2
    FROM answer_spans
    UNION ALL
    SELECT DISTINCT dataset, task_hash, session, 'token' AS mode, label, u1, u2 FROM (
        SELECT dataset, task_hash, session, label,
               CASE WHEN token_start IS NOT NULL AND token_end IS NOT NULL THEN 0 ELSE 1 END AS u1,
               unnest(CASE WHEN token_start IS NOT NULL AND token_end IS NOT NULL
                           THEN range(token_start, token_end + 1)
                           ELSE range(start, "end") END) AS u2
        FROM answer_spans
    )
),
side_a AS (
    SELECT p.dataset, p.session_a, p.session_b, u.mode, u.label, count(*) AS n
    FROM pairs p JOIN units u
      ON u.dataset = p.dataset AND u.task_hash = p.task_hash AND u.session = p.session_a
    GROUP BY ALL
),
side_b AS (
    SELECT p.dataset, p.session_a, p.session_b, u.mode, u.label, count(*) AS n
    FROM pairs p JOIN units u
      ON u.dataset = p.dataset AND u.task_hash = p.task_hash AND u.session = p.session_b
    GROUP BY ALL
),
matched AS (
    SELECT p.dataset, p.session_a, p.session_b, ua.mode, ua.label, count(*) AS n
    FROM pairs p
    JOIN units ua ON ua.dataset = p.dataset AND ua.task_hash = p.task_hash AND ua.session = p.session_a
    JOIN units ub ON ub.dataset = p.dataset AND ub.task_hash = p.task_hash AND ub.session = p.session_b
     AND ub.mode = ua.mode AND ub.u1 = ua.u1 AND ub.u2 = ua.u2 AND ub.label IS NOT DISTINCT FROM ua.label
    GROUP BY ALL
),
by_label AS (
    SELECT dataset, session_a, session_b, mode, label FROM side_a
    UNION
    SELECT dataset, session_a, session_b, mode, label FROM side_b
),
counts AS (
    SELECT l.dataset, l.session_a, l.session_b, l.mode, l.label,
           coalesce(m.n, 0) AS matched, coalesce(a.n, 0) AS n_a, coalesce(b.n, 0) AS n_b
    FROM by_label l
    LEFT JOIN side_a a USING (dataset, session_a, session_b, mode, label)
    LEFT JOIN side_b b USING (dataset, session_a, session_b, mode, label)
    LEFT JOIN matched m USING (dataset, session_a, session_b, mode, label)
),
totals AS (
    -- Overall: every label together, and every pair even when neither marked a span.
    SELECT n.dataset, n.session_a, n.session_b, modes.mode, NULL::VARCHAR AS label,
           CAST(coalesce(sum(c.matched), 0) AS BIGINT) AS matched,
           CAST(coalesce(sum(c.n_a), 0) AS BIGINT) AS n_a,
           CAST(coalesce(sum(c.n_b), 0) AS BIGINT) AS n_b
    FROM n_items n CROSS JOIN (VALUES ('exact'), ('token')) AS modes(mode)
    LEFT JOIN counts c
      ON c.dataset = n.dataset AND c.session_a = n.session_a AND c.session_b = n.session_b
     AND c.mode = modes.mode
    GROUP BY ALL
),
scored AS (
    SELECT c.*, n.n_items,
           quorum_span_score(c.matched, c.n_a, c.n_b, n.n_items) AS score
    FROM (SELECT * FROM counts WHERE label IS NOT NULL UNION ALL SELECT * FROM totals) c
    JOIN n_items n USING (dataset, session_a, session_b)
)
SELECT dataset, session_a, session_b, mode, label, score.precision AS precision, score.recall AS recall,
       score.f1 AS f1, matched, n_a, n_b, n_items
FROM scored;

-- _decision_key: what a session decided on a task (answer, options, spans by start, end
-- and label, in any order) as one 64-bit hash: equal decisions, equal keys. Comparing
-- hashes instead of strings built from every answer keeps the review queue cheap at
-- millions of answers (two different decisions colliding: ~5e-20 per pair).
CREATE MACRO _decision_key(answer, accept, spans) AS
    hash(answer, coalesce(list_sort(accept), []),
         list_sort(list_transform(coalesce(spans, []), lambda s: hash(s.start, s."end", s.label))));

-- _disagreement_tasks: which tasks are in the review queue, without the detail. The
-- dashboard takes the first N of these by answer_order and asks `disagreements` for those
-- tasks only (projections/reports.py), so the lists of decisions are built for N tasks.
CREATE VIEW _disagreement_tasks AS
SELECT dataset, task_hash, count(*) AS n_sessions, min(answer_order) AS answer_order
FROM (SELECT dataset, task_hash, answer_order, _decision_key(answer, accept, spans) AS decision
      FROM answers WHERE answer <> 'ignore')
GROUP BY dataset, task_hash
HAVING count(*) >= 2 AND min(decision) <> max(decision);

-- disagreements: the review queue — tasks two or more sessions answered (ignores aside)
-- with different decisions, and what each session decided. A filter on dataset and
-- task_hash reaches both scans of `answers` (grouping keys), so asking for a few tasks
-- is cheap.
CREATE VIEW disagreements AS
SELECT a.dataset, a.task_hash, any_value(a.input_hash) AS input_hash,
       any_value(a.example) ->> '$.text' AS text, count(*) AS n_sessions,
       count(DISTINCT _decision_key(a.answer, a.accept, a.spans)) AS n_decisions,
       list({'session': a.session, 'answer': a.answer, 'label': a.label, 'accept': a.accept,
             'spans': a.spans} ORDER BY a.session) AS decisions,
       max(a.answered_at) AS last_answered_at, min(a.answer_order) AS answer_order
FROM answers a SEMI JOIN _disagreement_tasks t ON a.dataset = t.dataset AND a.task_hash = t.task_hash
WHERE a.answer <> 'ignore'
GROUP BY a.dataset, a.task_hash;
