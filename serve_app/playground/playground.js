// SD-Turbo playground: one POST /predict per Generate, like any client, and what comes back.
// No framework and no build step; the API validates every value and its own message is shown
// next to the field it names (error.field).
"use strict";

(() => {
  const MAX_HISTORY = 24; // images are kept in memory; the oldest are dropped beyond this
  const INTEGER_FIELDS = ["seed", "num_inference_steps", "width", "height"];
  const NUMBER_FIELDS = ["guidance_scale"];

  const $ = (id) => document.getElementById(id);
  const form = $("generate-form");
  const generateButton = $("generate");
  const status = $("status");
  const formError = $("form-error");
  const resultSection = $("result");
  const historyList = $("history");

  let shown = null; // the history entry on display
  let busy = false;

  // 1. Reading the form into a request body ---------------------------------------------------
  function numberOrText(text, pattern) {
    // A well-formed number is sent as a number; anything else is sent as typed, so the API's own
    // message explains what is wrong with it (rather than the page guessing).
    const trimmed = text.trim();
    if (trimmed === "") return undefined;
    return pattern.test(trimmed) ? Number(trimmed) : trimmed;
  }

  function requestBody() {
    const value = (name) => form.elements.namedItem(name).value;
    const body = { prompt: value("prompt") };
    if (value("negative_prompt").trim() !== "") body.negative_prompt = value("negative_prompt");
    for (const name of INTEGER_FIELDS) {
      const number = numberOrText(value(name), /^-?\d+$/);
      if (number !== undefined) body[name] = number;
    }
    for (const name of NUMBER_FIELDS) {
      const number = numberOrText(value(name), /^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/);
      if (number !== undefined) body[name] = number;
    }
    body.output_format = value("output_format");
    if (value("model") !== "") body.model = value("model");
    return body;
  }

  // 2. Busy state and errors ----------------------------------------------------------------
  let ticker = null;
  function setBusy(on) {
    busy = on;
    generateButton.disabled = on;
    generateButton.textContent = on ? "Generating…" : "Generate";
    form.setAttribute("aria-busy", String(on));
    resultSection.setAttribute("aria-busy", String(on));
    resultSection.classList.toggle("busy", on);
    clearInterval(ticker);
    if (on) {
      const started = performance.now();
      status.textContent = "Generating…";
      ticker = setInterval(() => {
        status.textContent = `Generating… ${((performance.now() - started) / 1000).toFixed(1)} s`;
      }, 200);
    }
  }

  function clearErrors() {
    formError.textContent = "";
    for (const holder of form.querySelectorAll("p.error")) holder.textContent = "";
    for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
  }

  function showApiError(response, payload) {
    const error = payload && payload.error;
    let message = error && error.message ? error.message : `HTTP ${response.status} ${response.statusText}`.trim();
    const retryAfter = response.headers.get("Retry-After");
    if (retryAfter) message += ` (retry in ${retryAfter} s)`;
    const field = error && error.field;
    const input = field ? form.elements.namedItem(field) : null;
    const holder = field ? $(`${field}-error`) : null;
    if (input && holder) {
      holder.textContent = message;
      input.setAttribute("aria-invalid", "true");
      input.focus();
    } else {
      // Errors that name no field of this form (overloaded, timeout, ...) go under the button.
      formError.textContent = field ? `${field}: ${message}` : message;
    }
    status.textContent = `Error ${response.status}${error ? ` (${error.type})` : ""}`;
  }

  // 3. Showing a result, and the strip of earlier ones ------------------------------------------
  function show(entry) {
    shown = entry;
    const r = entry.response;
    const image = $("result-image");
    const link = $("result-link");
    $("placeholder").hidden = true;
    if (entry.src) {
      image.src = entry.src;
      image.alt = `Generated image for: ${entry.prompt}`;
      image.width = r.width;
      image.height = r.height;
      image.hidden = false;
      link.hidden = true;
    } else {
      // Too large to answer inline: the server stored it in S3. A link, not an <img>, so the
      // page itself never loads anything from another origin.
      image.hidden = true;
      link.hidden = false;
      link.replaceChildren("Delivered to S3: ");
      const anchor = document.createElement("a");
      anchor.href = r.image_url;
      anchor.textContent = "open the image";
      anchor.rel = "noreferrer";
      link.append(anchor);
    }
    $("result-prompt").textContent = entry.prompt;
    $("result-seed").textContent = String(r.seed);
    $("result-size").textContent = `${r.width} × ${r.height} ${r.format.toUpperCase()}`;
    $("result-batch").textContent = String(r.batch_size);
    $("result-cached").textContent = r.cached ? "yes" : "no";
    $("result-steps").textContent = `${r.num_inference_steps} / ${r.guidance_scale}`;
    const t = r.timings_ms;
    $("result-timings").textContent =
      `queue ${t.queue.toFixed(0)} ms · inference ${t.inference.toFixed(0)} ms · ` +
      `encode ${t.encode.toFixed(0)} ms · total ${t.total.toFixed(0)} ms`;
    const source = r.model.revision ? `${r.model.id} @ ${r.model.revision.slice(0, 12)}` : r.model.id;
    $("result-model").textContent = `${r.model.name} (${source})`;
    $("result-request").textContent = r.request_id;
    $("result-meta").hidden = false;
    $("keep-seed").disabled = false;
    for (const button of historyList.querySelectorAll("button")) {
      button.setAttribute("aria-pressed", String(button.dataset.index === String(entry.index)));
    }
  }

  function addToHistory(entry) {
    if (historyList.children.length >= MAX_HISTORY) historyList.lastElementChild.remove(); // the oldest
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.index = String(entry.index);
    button.setAttribute("aria-label", `Result ${entry.index}: ${entry.prompt} (seed ${entry.response.seed})`);
    button.title = `${entry.prompt} (seed ${entry.response.seed})`;
    if (entry.src) {
      const thumb = document.createElement("img");
      thumb.src = entry.src;
      thumb.alt = "";
      button.append(thumb);
    } else {
      button.textContent = "S3";
    }
    button.addEventListener("click", () => show(entry));
    item.append(button);
    historyList.prepend(item); // newest first
    $("history-empty").hidden = true;
  }

  // 4. Generate: one POST /predict ---------------------------------------------------------------
  let counter = 0;
  async function generate() {
    if (busy) return;
    clearErrors();
    const body = requestBody();
    setBusy(true);
    try {
      let response;
      try {
        response = await fetch("predict", {
          method: "POST",
          headers: { "Content-Type": "application/json", Accept: "application/json" },
          body: JSON.stringify(body),
        });
      } catch (error) {
        formError.textContent = `The service did not answer: ${error.message}`;
        status.textContent = "Error";
        return;
      }
      const payload = await response.json().catch(() => null);
      if (!response.ok || !payload) {
        showApiError(response, payload);
        return;
      }
      counter += 1;
      const entry = {
        index: counter,
        prompt: body.prompt,
        response: payload,
        src: payload.image ? `data:image/${payload.format};base64,${payload.image}` : null,
      };
      addToHistory(entry);
      show(entry);
      status.textContent = `Done: seed ${payload.seed}, ${payload.timings_ms.total.toFixed(0)} ms.`;
    } finally {
      setBusy(false);
    }
  }

  // 5. The model selector, from GET /models (what this server serves, the default first) --------
  async function loadModels() {
    const select = $("model");
    try {
      const response = await fetch("models", { headers: { Accept: "application/json" } });
      const payload = await response.json();
      for (const model of payload.models) {
        const option = document.createElement("option");
        option.value = model.name;
        option.textContent = `${model.name} (${model.family}${model.model.random_weights ? ", random weights" : ""})`;
        option.title = `${model.model.id}: up to ${model.max_prompt_tokens} prompt tokens, ${model.max_steps} steps`;
        select.append(option);
      }
      $("model-hint").textContent = `${payload.models.length} model${payload.models.length === 1 ? "" : "s"} served here; the first is the default.`;
    } catch (error) {
      // Without the list the request names no model: the server's default answers.
      $("model-hint").textContent = `Could not list the models (${error.message}): the default model answers.`;
    }
  }
  loadModels();

  // 6. Wiring: button, Enter, seed controls ------------------------------------------------------
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    generate();
  });
  $("prompt").addEventListener("keydown", (event) => {
    // A textarea would take Enter as a new line; here Enter generates and Shift+Enter breaks.
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  $("keep-seed").addEventListener("click", () => {
    if (shown) $("seed").value = String(shown.response.seed);
  });
  $("reroll-seed").addEventListener("click", () => {
    $("seed").value = "";
    $("seed").focus();
  });
})();
