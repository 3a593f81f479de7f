// The per-category bar chart of an operation report, drawn as SVG (one rect.bar per
// category, labelled with its name and file count).
import type { reports } from "@fileorganizer/sdk";

const SVG = "http://www.w3.org/2000/svg";
const ROW = 26;
const LABEL = 130;
const WIDTH = 560;

function el<K extends keyof SVGElementTagNameMap>(name: K, attrs: Record<string, string | number>): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  return node;
}

export function drawCategoryChart(svg: SVGSVGElement, categories: reports.CategoryBreakdown[]): void {
  svg.replaceChildren();
  const rows = [...categories].sort((a, b) => Number(b.fileCount - a.fileCount) || a.category.localeCompare(b.category));
  const max = Math.max(1, ...rows.map((c) => Number(c.fileCount)));
  svg.setAttribute("width", String(WIDTH));
  svg.setAttribute("height", String(Math.max(1, rows.length) * ROW + 4));
  svg.setAttribute("viewBox", `0 0 ${WIDTH} ${Math.max(1, rows.length) * ROW + 4}`);
  rows.forEach((c, i) => {
    const y = i * ROW + 2;
    const count = Number(c.fileCount);
    const width = Math.max(2, ((WIDTH - LABEL - 60) * count) / max);
    const label = el("text", { x: 0, y: y + 16 });
    label.textContent = c.category;
    const bar = el("rect", { class: "bar", x: LABEL, y, width, height: ROW - 6, rx: 3 });
    bar.dataset.category = c.category;
    bar.dataset.count = String(count);
    const title = el("title", {});
    title.textContent = `${c.category}: ${count} file(s), ${c.sizeBytes} bytes`;
    bar.append(title);
    const value = el("text", { x: LABEL + width + 6, y: y + 16 });
    value.textContent = String(count);
    svg.append(label, bar, value);
  });
}
