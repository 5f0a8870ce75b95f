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
   */
  constructor(status, code, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }

  /** Worth retrying as is: no answer from the server, a timeout, a 5xx, a 408 or 429. */
  get retryable() {
    return this.status === 0 || this.status >= 500 || this.status === 408 || this.status === 429;
  }

  /** The server never saw the request (or never answered it). */
  get offline() {
    return this.status === 0;
  }
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
      throw new ApiError(response.status, code, message);
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
