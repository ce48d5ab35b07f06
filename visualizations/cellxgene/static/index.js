/*
 * Galaxy "Visualize" -> cellxgene.
 *
 * Galaxy loads this module into the visualization frame, next to
 * <div id="app" data-incoming='{"root": ..., "visualization_config": {"dataset_id": ...},
 * "visualization_plugin": {..., "specs": {...}}}'>. The frame shares Galaxy's origin, so the
 * user's session cookie authorises every API call below; no key is involved.
 *
 * Flow: reuse a running cellxgene on this dataset or POST /api/tools; then poll the job
 * (GET /api/jobs/{id}) and its entry points (GET /api/entry_points?job_id=) and show the real
 * state; once an entry point is active, ask the proxy for the viewer until it answers, then
 * navigate this frame there. A failed job shows the runtime's own message (its stderr).
 */

const POLL_MS = 1000;
const SLOW_POLL_MS = 3000;
const SLOW_AFTER_MS = 60000;
// After Galaxy marks the entry point active the proxy normally answers within a second; past
// this, tell the user what the proxy says instead of waiting silently (we keep trying).
const PROXY_PATIENCE_MS = 20000;

const incoming = readIncoming();
const ROOT = ensureSlash(incoming.root || `${window.location.origin}/`);
const DATASET_ID = incoming.visualization_config?.dataset_id;
const SPECS = incoming.visualization_plugin?.specs || {};
const TOOL_ID = SPECS.tool_id || "interactive_tool_cellxgene";
const INPUT_NAME = SPECS.input_name || "input";
const TOOL_INPUTS = parseJson(SPECS.tool_inputs, { "mode|mode_select": "view" });

const STEPS = [
    ["submit", "Start cellxgene"],
    ["queue", "Wait for a job slot"],
    ["load", "Load the dataset"],
    ["proxy", "Connect through Galaxy's proxy"],
    ["open", "Open the viewer"],
];

function readIncoming() {
    const el = document.getElementById("app");
    try {
        return JSON.parse(el?.getAttribute("data-incoming") || "{}");
    } catch {
        return {};
    }
}

function ensureSlash(url) {
    return url.endsWith("/") ? url : `${url}/`;
}

function parseJson(text, fallback) {
    if (!text) return fallback;
    if (typeof text === "object") return text;
    try {
        return JSON.parse(text);
    } catch {
        return fallback;
    }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

class ApiError extends Error {
    constructor(message, status) {
        super(message);
        this.status = status;
    }
}

async function api(path, options = {}) {
    const headers = { Accept: "application/json" };
    if (options.body) headers["Content-Type"] = "application/json";
    let response;
    try {
        response = await fetch(ROOT + path, { credentials: "same-origin", cache: "no-store", headers, ...options });
    } catch (err) {
        throw new ApiError(`Galaxy did not answer (${err.message || err}).`, 0);
    }
    let body = null;
    try {
        body = await response.json();
    } catch {
        body = null;
    }
    if (!response.ok) {
        const detail = body?.err_msg || body?.detail || `HTTP ${response.status}`;
        throw new ApiError(typeof detail === "string" ? detail : JSON.stringify(detail), response.status);
    }
    return body;
}

// ----------------------------------------------------------------------------------- view

const ui = buildUi();

function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
        if (key === "class") node.className = value;
        else node.setAttribute(key, value);
    }
    for (const child of children) node.append(child);
    return node;
}

function buildUi() {
    const title = el("h1", { "data-testid": "cxg-title" }, "cellxgene");
    const subtitle = el("p", { class: "cxg-subtitle", "data-testid": "cxg-dataset" }, "");
    const steps = el("ol", { class: "cxg-steps", "data-testid": "cxg-steps" });
    const items = {};
    for (const [key, label] of STEPS) {
        const detail = el("span", { class: "cxg-detail" });
        const item = el("li", { "data-step": key, "data-state": "pending" }, el("span", { class: "cxg-label" }, label), detail);
        items[key] = { item, detail };
        steps.append(item);
    }
    const message = el("p", { class: "cxg-message", "data-testid": "cxg-message", role: "status" });
    const error = el("div", { class: "cxg-error", "data-testid": "cxg-error", hidden: "" });
    const actions = el("div", { class: "cxg-actions" });
    const main = el("main", { class: "cxg-main", "data-testid": "cxg-launcher" }, title, subtitle, steps, message, error, actions);
    document.body.append(main);
    return { subtitle, items, message, error, actions, main };
}

function step(key, state, detail) {
    const entry = ui.items[key];
    if (!entry) return;
    entry.item.setAttribute("data-state", state);
    if (detail !== undefined) entry.detail.textContent = detail ? ` — ${detail}` : "";
    // Earlier steps are done once a later one starts.
    if (state === "active" || state === "done") {
        for (const [other] of STEPS) {
            if (other === key) break;
            const prior = ui.items[other].item;
            if (prior.getAttribute("data-state") !== "done") prior.setAttribute("data-state", "done");
        }
    }
    ui.main.setAttribute("data-phase", key);
}

function say(text) {
    ui.message.textContent = text;
}

function link(text, href, testid, newTab = true) {
    const a = el("a", { href, "data-testid": testid }, text);
    if (newTab) {
        a.target = "_blank";
        a.rel = "noopener";
    }
    return a;
}

function button(text, testid, onClick) {
    const b = el("button", { type: "button", "data-testid": testid }, text);
    b.addEventListener("click", onClick);
    return b;
}

function setActions(...nodes) {
    ui.actions.replaceChildren(...nodes);
}

function fail(summary, details = []) {
    const current = ui.main.getAttribute("data-phase") || "submit";
    step(current, "failed");
    ui.main.setAttribute("data-phase", "failed");
    say("");
    ui.error.hidden = false;
    ui.error.replaceChildren(el("strong", {}, summary));
    const lines = details.filter(Boolean);
    if (lines.length) ui.error.append(el("pre", { "data-testid": "cxg-error-details" }, lines.join("\n")));
}

function elapsed(since) {
    const s = Math.round((Date.now() - since) / 1000);
    return s < 90 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
}

// ----------------------------------------------------------------------------------- flow

async function main() {
    if (!DATASET_ID) {
        fail("No dataset was passed to the cellxgene visualization.");
        return;
    }
    step("submit", "active");
    say("Looking at the dataset…");
    const dataset = await api(`api/datasets/${DATASET_ID}`);
    ui.subtitle.textContent = `${dataset.hid ? `#${dataset.hid} ` : ""}${dataset.name}`;
    if (dataset.state !== "ok") {
        fail(`The dataset is not ready yet (state: ${dataset.state}). Try again once it is green.`);
        return;
    }

    const running = await findRunningSession();
    if (running) {
        step("submit", "pending");
        say(`cellxgene already runs on this dataset (job started ${new Date(running.job.create_time + "Z").toLocaleString()}).`);
        setActions(
            button("Open the running viewer", "cxg-reuse", () => follow(running.job.id, Date.now())),
            button("Start a new viewer", "cxg-start-new", () => launch(dataset)),
        );
        return;
    }
    await launch(dataset);
}

function sameTool(toolId) {
    return toolId === TOOL_ID || String(toolId || "").includes(`/${TOOL_ID}/`);
}

async function findRunningSession() {
    let entryPoints;
    try {
        entryPoints = await api("api/entry_points?running=true");
    } catch {
        return null; // reuse is a convenience; never block a fresh start on it
    }
    const jobIds = [...new Set((entryPoints || []).map((ep) => ep.job_id).filter(Boolean))];
    for (const jobId of jobIds) {
        try {
            const job = await api(`api/jobs/${jobId}`);
            const input = job.inputs?.[INPUT_NAME];
            if (sameTool(job.tool_id) && input?.id === DATASET_ID && !isTerminal(job.state)) return { job };
        } catch {
            /* a job we cannot read is not ours to reuse */
        }
    }
    return null;
}

async function launch(dataset) {
    setActions();
    step("submit", "active");
    say("Starting the cellxgene interactive tool…");
    const payload = {
        tool_id: TOOL_ID,
        history_id: dataset.history_id,
        inputs: { ...TOOL_INPUTS, [INPUT_NAME]: { src: "hda", id: DATASET_ID } },
    };
    let run;
    try {
        run = await api("api/tools", { method: "POST", body: JSON.stringify(payload) });
    } catch (err) {
        const hint =
            err.status === 400 || err.status === 404
                ? `Is the tool "${TOOL_ID}" installed, and are interactive tools enabled on this Galaxy?`
                : "";
        fail(`Galaxy did not start cellxgene: ${err.message}`, [hint]);
        return;
    }
    const job = run?.jobs?.[0];
    if (!job?.id) {
        fail("Galaxy accepted the request but created no job.", [JSON.stringify(run)]);
        return;
    }
    await follow(job.id, Date.now());
}

const WAITING = new Set(["new", "resubmitted", "upload", "waiting", "queued"]);
const FAILED = new Set(["error", "failed", "deleted", "deleting", "deleted_new", "skipped"]);
const ENDED = new Set(["ok", "stopped", "paused"]);

function isTerminal(state) {
    return FAILED.has(state) || ENDED.has(state);
}

async function follow(jobId, since) {
    setActions(link("Job details", `${ROOT}jobs/${jobId}/view`, "cxg-job-link"));
    ui.main.setAttribute("data-job-id", jobId);
    let proxySince = null;
    let lastProxyAnswer = "";
    for (;;) {
        let job;
        try {
            job = await api(`api/jobs/${jobId}`);
        } catch (err) {
            say(`Galaxy did not answer about the job (${err.message}); retrying…`);
            await sleep(SLOW_POLL_MS);
            continue;
        }
        const state = job.state;
        if (WAITING.has(state)) {
            step("queue", "active", state);
            say(`Waiting for Galaxy to run the job (${state}, ${elapsed(since)}).`);
        } else if (state === "running") {
            const entry = await activeEntryPoint(jobId);
            if (!entry) {
                step("load", "active", `${elapsed(since)}`);
                say("cellxgene is loading the dataset. Large datasets take longer.");
            } else {
                const target = new URL(entry.target, ROOT).href;
                setActions(
                    link("Job details", `${ROOT}jobs/${jobId}/view`, "cxg-job-link"),
                    link("Open in a new tab", target, "cxg-open-tab"),
                );
                proxySince ??= Date.now();
                step("proxy", "active");
                const answer = await probe(target);
                if (answer.ok) {
                    step("open", "active");
                    say("Opening cellxgene…");
                    window.location.assign(target);
                    return;
                }
                lastProxyAnswer = answer.text;
                if (Date.now() - proxySince > PROXY_PATIENCE_MS) {
                    say(
                        `Galaxy reports the viewer as ready, but its proxy answers: ${lastProxyAnswer}. ` +
                            "Still trying; if this persists, the interactive tool proxy is not routing this entry point.",
                    );
                } else {
                    say("The viewer is up; waiting for Galaxy's proxy to route to it…");
                }
            }
        } else if (FAILED.has(state) || ENDED.has(state)) {
            await reportEnd(jobId, state);
            return;
        } else {
            say(`Job state: ${state}.`);
        }
        await sleep(Date.now() - since > SLOW_AFTER_MS ? SLOW_POLL_MS : POLL_MS);
    }
}

async function activeEntryPoint(jobId) {
    try {
        const entries = await api(`api/entry_points?job_id=${encodeURIComponent(jobId)}`);
        return (entries || []).find((ep) => ep.active && ep.target) || null;
    } catch {
        return null;
    }
}

// Ask the proxy for the viewer's page before navigating, so the user never lands on a bare
// "Proxy target missing". Same origin: read the status. Another origin (domain-based entry
// points): an opaque answer still proves something answered.
async function probe(target) {
    const sameOrigin = new URL(target).origin === new URL(ROOT).origin;
    try {
        const response = await fetch(target, {
            credentials: sameOrigin ? "same-origin" : "omit",
            cache: "no-store",
            mode: sameOrigin ? "same-origin" : "no-cors",
        });
        if (!sameOrigin) return { ok: true, text: "" };
        if (response.ok) return { ok: true, text: "" };
        const text = (await response.text()).replace(/\s+/g, " ").trim().slice(0, 200);
        return { ok: false, text: `HTTP ${response.status}${text ? ` "${text}"` : ""}` };
    } catch (err) {
        return { ok: false, text: String(err.message || err) };
    }
}

async function reportEnd(jobId, state) {
    let job = {};
    try {
        job = await api(`api/jobs/${jobId}?full=true`);
    } catch {
        /* show what we know */
    }
    const stderr = (job.tool_stderr || job.stderr || "").trim();
    const tail = stderr ? stderr.split("\n").slice(-25) : [];
    const messages = (job.job_messages || []).map((m) => m.desc || m.message || JSON.stringify(m));
    const exit = job.exit_code !== undefined && job.exit_code !== null ? [`exit code ${job.exit_code}`] : [];
    if (FAILED.has(state)) {
        fail(`cellxgene could not start (job ${state}).`, [...messages, ...tail, ...exit]);
    } else {
        fail(
            `The cellxgene job ended (${state}) before the viewer opened. Its outputs are in your history.`,
            [...messages, ...tail],
        );
    }
}

main().catch((err) => fail(`Unexpected problem: ${err.message || err}`));
