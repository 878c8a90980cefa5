// PEM Registry web catalog: copy buttons, live composition status, client-side file hashing.
// Served from this origin (the Content-Security-Policy allows no inline script). Text is only ever
// written with textContent, never as HTML.
"use strict";

function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    return navigator.clipboard.writeText(text);
  }
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.className = "offscreen";
  document.body.appendChild(area);
  area.select();
  try { document.execCommand("copy"); } finally { area.remove(); }
  return Promise.resolve();
}

function setupCopy() {
  document.querySelectorAll("button[data-copy]").forEach((button) => {
    button.addEventListener("click", () => {
      const label = button.textContent;
      copyText(button.dataset.copy).then(
        () => { button.textContent = "Copied"; },
        () => { button.textContent = "Copy failed"; },
      ).finally(() => setTimeout(() => { button.textContent = label; }, 1500));
    });
  });
}

// Badges of pending/running compositions poll their JSON status until the run ends.
function setupPolling() {
  const badges = Array.from(document.querySelectorAll("[data-poll]"));
  if (!badges.length) return;
  const tick = () => {
    const live = badges.filter((b) => b.dataset.poll);
    if (!live.length) return;
    Promise.all(live.map((badge) =>
      fetch(badge.dataset.poll, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then((r) => (r.ok ? r.json() : null))
        .then((body) => {
          if (!body) return;
          badge.textContent = body.status;
          badge.className = "badge status-" + body.status;
          if (body.terminal) {
            delete badge.dataset.poll;
            if (badge.dataset.reload) window.location.reload();
          }
        })
        .catch(() => {})
    )).finally(() => setTimeout(tick, 2000));
  };
  setTimeout(tick, 2000);
}

// Digest search: hash a chosen file with WebCrypto (needs a secure context: https or localhost).
function setupHashing() {
  const input = document.getElementById("hash-file");
  if (!input) return;
  const status = document.getElementById("hash-status");
  input.addEventListener("change", () => {
    const file = input.files && input.files[0];
    if (!file) return;
    if (!(window.crypto && crypto.subtle)) {
      status.textContent = "this browser cannot hash files here (needs https or localhost); paste the digest";
      return;
    }
    status.textContent = "hashing " + file.name + " …";
    file.arrayBuffer()
      .then((buf) => crypto.subtle.digest("SHA-256", buf))
      .then((digest) => {
        const hex = Array.from(new Uint8Array(digest)).map((b) => b.toString(16).padStart(2, "0")).join("");
        document.getElementById(input.dataset.target).value = hex;
        status.textContent = "sha256 of " + file.name;
        document.getElementById("digest-form").submit();
      })
      .catch((err) => { status.textContent = "could not hash: " + err; });
  });
}

// Lineage graph: a deep ancestry puts the version itself at the far right; bring it into view.
function showRoot() {
  const root = document.querySelector("svg.lineage .node.root");
  if (root) root.scrollIntoView({ block: "nearest", inline: "center" });
}

document.addEventListener("DOMContentLoaded", () => {
  showRoot();
  setupCopy();
  setupPolling();
  setupHashing();
});
