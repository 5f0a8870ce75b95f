// The feed API, as the browser sees it: three JSON calls, one error shape.
//
// Every request carries the session (`?session=` and `session_id` in the body), so any
// worker behind a load balancer can serve it. Nothing here keeps state between calls.

/** Why a request failed: the server's `{error, message, status}`, or the network. */
export class ApiError extends Error {
  /**
   * @param {number} status  HTTP status, 0 when the server could not be reached
   * @param {string} code    the server's error code, or "network" / "timeout"
   * @param {string} message what went wrong, in words an annotator can act on
   * @param {{taskHash?: string|null, retryAfter?: number|null}} details
   *   `taskHash`: the answer the server refused (409, 422, 403), when it says;
   *   `retryAfter`: seconds to wait, from a `Retry-After` header
   */
  constructor(status, code, message, { taskHash = null, retryAfter = null } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.taskHash = taskHash;
    this.retryAfter = retryAfter;
  }

  /** Worth retrying as is: no answer from the server, a timeout, a 5xx, a 408 or 429. */
  get retryable() {
    return this.status === 0 || this.status >= 500 || this.status === 408 || this.status === 429;
  }

  /** The server never saw the request (or never answered it). */
  get offline() {
    return this.status === 0;
  }

  /** Overloaded or restarting: the server said when to come back (`503` + `Retry-After`). */
  get busy() {
    return this.status === 503 && this.retryAfter !== null;
  }

  /**
   * A task token outlived its time: `token_expired`, or (servers before that code) a
   * `forbidden` whose message says "expired". The answer can never be accepted.
   */
  get expired() {
    return (
      this.status === 403 &&
      (this.code === "token_expired" || (this.code === "forbidden" && /expired/i.test(this.message)))
    );
  }

  /**
   * The recipe's `validate_answer` refused the answer (422 `recipe_rejected`). The
   * message is the recipe's, and the task is still this session's: the annotator can
   * change the answer and give it again.
   */
  get rejected() {
    return this.code === "recipe_rejected";
  }

  /**
   * The answer can never be accepted as it is, and holding it helps nobody: the task was
   * answered by as many sessions as routing allows (409), the answer is invalid (422) or
   * refused by the recipe, or its token expired. The rest of its batch can go.
   */
  get final() {
    return this.code === "surplus_answer" || this.code === "invalid_answer" || this.rejected || this.expired;
  }
}

/** Seconds from a `Retry-After` header (delta-seconds or an HTTP date), or null. */
export function retryAfterSeconds(value) {
  if (!value) return null;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text);
  const at = Date.parse(text);
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

const TIMEOUT_MS = 20000;

/** A client for one session of one feed server. */
export class Api {
  /** @param {string} session the bare session name from `?session=` */
  constructor(session, base = "") {
    this.session = session;
    this.base = base;
  }

  url(path) {
    return `${this.base}${path}?session=${encodeURIComponent(this.session)}`;
  }

  async call(method, path, body, { keepalive = false } = {}) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), TIMEOUT_MS);
    let response;
    try {
      response = await fetch(this.url(path), {
        method,
        headers: body === undefined ? {} : { "Content-Type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
        keepalive,
        signal: controller.signal,
        cache: "no-store",
      });
    } catch (err) {
      const timedOut = err && err.name === "AbortError";
      throw new ApiError(
        0,
        timedOut ? "timeout" : "network",
        timedOut ? "the server did not answer in time" : "the server cannot be reached",
      );
    } finally {
      clearTimeout(timer);
    }
    const text = await response.text().catch(() => "");
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!response.ok) {
      const message =
        data && typeof data.message === "string"
          ? data.message
          : `the server answered ${response.status} ${response.statusText || ""}`.trim();
      const code = data && typeof data.error === "string" ? data.error : `http_${response.status}`;
      throw new ApiError(response.status, code, message, {
        taskHash: data && data.task_hash !== undefined && data.task_hash !== null ? String(data.task_hash) : null,
        retryAfter: retryAfterSeconds(response.headers.get("Retry-After")),
      });
    }
    if (data === null || typeof data !== "object") {
      throw new ApiError(502, "bad_response", "the server sent a reply that is not JSON");
    }
    return data;
  }

  /** `GET /project`: dataset, view_id, labels, batch_size, choice settings, instructions. */
  project() {
    return this.call("GET", "/project");
  }

  /**
   * `POST /get_session_questions`: the next batch of tasks (maybe empty) and progress.
   * `reload`: this page holds none of the tasks handed to the session earlier (a fresh
   * page load), so the server sends those back first.
   */
  questions({ reload = false } = {}) {
    const body = reload ? { session_id: this.session, reload: true } : { session_id: this.session };
    return this.call("POST", "/get_session_questions", body);
  }

  /** `POST /give_answers`: resolves only once the ledger has the answers. */
  giveAnswers(answers, options = {}) {
    return this.call("POST", "/give_answers", { answers, session_id: this.session }, options);
  }
}
