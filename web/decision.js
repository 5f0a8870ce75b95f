// The decision key on every answer: when the annotator decided (`_timestamp`, integer
// seconds since the epoch) and which decision it is (`_decision_id`, random, 22 chars of
// [A-Za-z0-9_-]). A new decision (a first answer, or another after undo) gets a new id;
// a retry of the same decision keeps its id, so the server can tell a resend, which it
// records once, from a changed mind, which supersedes the earlier answer.

/** A fresh random decision id: 16 random bytes, base64url without padding. */
export function decisionId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return btoa(String.fromCharCode(...bytes))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");
}

/** `answer` as a new decision, made at `now` (milliseconds). */
export function decided(answer, now = Date.now()) {
  return { ...answer, _timestamp: Math.floor(now / 1000), _decision_id: decisionId() };
}
