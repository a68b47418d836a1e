// Render every plot of a `dvc plots show` page with the libraries the page carries inline, as a
// browser would but headless and without internet: node, and a do-nothing stand-in for the page's
// elements (Vega renders with renderer "none", then exports SVG). Prints one JSON line per plot.
const fs = require("fs");
const html = fs.readFileSync(process.argv[2], "utf8");
const inline = html.match(/<script type="text\/javascript">\n([\s\S]*?)\n    <\/script>/);
if (!inline) { console.error("no inline libraries"); process.exit(2); }
const inert = () => new Proxy(function () {}, {
  get: (target, key) => (key === Symbol.toPrimitive ? () => "" : key === "then" ? undefined : inert()),
  apply: () => inert(), construct: () => inert(), set: () => true,
});
globalThis.window = globalThis;
globalThis.document = inert();
globalThis.navigator = { userAgent: "node" };
globalThis.ShadowRoot = class ShadowRoot {};
globalThis.addEventListener = () => {};
globalThis.removeEventListener = () => {};
globalThis.HTMLElement = class HTMLElement {};
globalThis.Element = class Element {};
(0, eval)(inline[1]);
if (typeof window.vegaEmbed !== "function") { console.error("the page's libraries define no vegaEmbed"); process.exit(2); }
const plots = [...html.matchAll(/<div id = "([^"]+)">\s*<script type = "text\/javascript">\s*var spec = ([\s\S]*?);\s*vegaEmbed\('#/g)];
(async () => {
  for (const [, id, text] of plots) {
    const result = await window.vegaEmbed(inert(), JSON.parse(text), { renderer: "none", actions: false });
    const svg = await result.view.toSVG();
    const lines = [...svg.matchAll(/class="mark-(?:line|symbol)[^"]*"[^>]*>([\s\S]*?)<\/g>/g)].map((m) => (m[1].match(/ d="M/g) || []).length);
    console.log(JSON.stringify({ id, data_marks: lines.reduce((a, b) => a + b, 0), rows: result.view.data("data_0") ? result.view.data("data_0").length : null }));
  }
})().catch((e) => { console.error(e.stack || String(e)); process.exit(1); });
