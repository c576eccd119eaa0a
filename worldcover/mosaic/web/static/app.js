// The page of `worldcover mosaic serve`: Leaflet over the server's tiles and JSON (same origin, no CDN).
// ?lat=..&lon=..&z=.. opens at that view; otherwise the map fits the tiles' data.
"use strict";

// CSS approximations of the rio-tiler colour maps the server renders with, for the ramp in the panel
const RAMPS = {
  viridis: "linear-gradient(to right, #440154, #3b528b, #21918c, #5ec962, #fde725)",
  magma: "linear-gradient(to right, #000004, #51127c, #b73779, #fc8961, #fcfdbf)",
};

function el(tag, attrs, text) {
  const node = document.createElement(tag);
  Object.entries(attrs || {}).forEach(([k, v]) => node.setAttribute(k, v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function drawLegend(legend) {
  const list = document.getElementById("legend-items");
  legend.forEach((c) => {
    const li = el("li", { "data-code": c.code });
    li.appendChild(el("span", { class: "swatch", style: `background:${c.colour}` }));
    li.appendChild(el("span", {}, `${c.code} ${c.name}`));
    list.appendChild(li);
  });
}

function showRamp(spec) {
  const ramp = document.getElementById("ramp");
  ramp.hidden = !spec;
  if (!spec) return;
  document.getElementById("ramp-title").textContent = spec.title;
  document.getElementById("ramp-bar").style.background = RAMPS[spec.colormap] || RAMPS.viridis;
  document.getElementById("ramp-min").textContent = spec.range[0];
  document.getElementById("ramp-max").textContent = spec.range[1];
}

function showQuery(result) {
  const box = document.getElementById("query-result");
  box.textContent = "";
  box.dataset.class = result["class"] === null ? "" : String(result["class"]);
  const rows = [
    ["lon, lat", `${result.lon.toFixed(6)}, ${result.lat.toFixed(6)}`],
    ["tile", result.tile || "none"],
    ["class", result["class"] === null ? "no data" : `${result["class"]} ${result.class_name}`],
    ["probability", result.probability === null ? "-" : `${result.probability} %`],
  ];
  Object.entries(result.input_quality || {}).forEach(([k, v]) => rows.push([k, v === null ? "-" : v]));
  const table = el("table");
  rows.forEach(([k, v]) => {
    const tr = el("tr");
    tr.appendChild(el("td", {}, k));
    const td = el("td", { "data-field": k }, String(v));
    if (k === "class" && result.colour) td.prepend(el("span", { class: "swatch", style: `background:${result.colour}` }));
    tr.appendChild(td);
    table.appendChild(tr);
  });
  box.appendChild(table);
  return table.outerHTML;
}

async function main() {
  const config = await (await fetch("/config.json")).json();
  document.title = config.title;
  document.getElementById("title").textContent = config.title;
  drawLegend(config.legend);

  const map = L.map("map", { zoomSnap: 1, worldCopyJump: true });
  window.wcMap = map; // for tests and the console
  const params = new URLSearchParams(window.location.search);
  if (params.has("lat") && params.has("lon")) {
    map.setView([Number(params.get("lat")), Number(params.get("lon"))], Number(params.get("z") || 12));
  } else {
    const [w, s, e, n] = config.bounds;
    map.fitBounds([[s, w], [n, e]], { maxZoom: 13 });
  }

  const noWrap = { maxZoom: 19, maxNativeZoom: 18, noWrap: true, zIndex: 2, attribution: "worldcover" };
  const land = L.tileLayer("/land/tiles/{z}/{x}/{y}.png",
                           { maxZoom: 19, maxNativeZoom: 9, noWrap: true, zIndex: 1, attribution: "GLOBE land mask" });
  land.addTo(map);
  const layers = {
    // reproject=mode: a zoomed-out pixel takes the commonest class under it (GDAL warp), so small
    // tiles still show instead of falling between nearest-neighbour samples
    Map: L.tileLayer("/map/tiles/WebMercatorQuad/{z}/{x}/{y}.png?reproject=mode", noWrap),
    Probability: L.tileLayer("/layers/probability/tiles/{z}/{x}/{y}.png",
                             { ...noWrap, minZoom: config.tile_layer_minzoom }),
    InputQuality: L.tileLayer("/layers/input_quality/tiles/{z}/{x}/{y}.png",
                              { ...noWrap, minZoom: config.tile_layer_minzoom }),
  };
  const ramps = { Probability: config.layers.probability, InputQuality: config.layers.input_quality };
  Object.entries(layers).forEach(([name, layer]) => {
    layer.on("loading", () => { document.body.dataset.tilesLoaded = ""; });
    layer.on("load", () => { document.body.dataset.tilesLoaded = name; });
  });
  layers.Map.addTo(map);
  map.on("baselayerchange", (ev) => showRamp(ramps[ev.name]));

  const overlays = { "Land (GLOBE)": land };
  const outlines = await (await fetch("/outlines.geojson")).json();
  overlays["Tile outlines"] = L.geoJSON(outlines, {
    style: (f) => (f.properties.kind === "tile"
      ? { color: "#333", weight: 1, dashArray: "4 3", fill: false }
      : { color: "#000", weight: 2, fill: false }),
    onEachFeature: (f, layer) => layer.bindTooltip(`${f.properties.tile} (${f.properties.kind})`),
    interactive: false,
  }).addTo(map);
  if (config.samples) {
    const samples = await (await fetch("/samples.geojson")).json();
    const colour = Object.fromEntries(config.legend.map((c) => [c.code, c.colour]));
    // fill: the map class; ring: red where the reference label disagrees, dark where it agrees
    overlays["Validation samples"] = L.geoJSON(samples, {
      pointToLayer: (f, latlng) => L.circleMarker(latlng, {
        radius: 4, weight: 1.5, fillOpacity: 0.9, fillColor: colour[f.properties.map_class] || "#fff",
        color: f.properties.agree === false ? "#e00" : "#222",
      }),
      onEachFeature: (f, layer) => layer.bindTooltip(
        `sample ${f.properties.id}: map ${f.properties.map_class}` +
        (f.properties.reference_class === null ? "" : `, reference ${f.properties.reference_class}`)),
    });
    // a dense sample would hide the map it assesses: then it waits to be ticked in the layer control
    if (samples.features.length <= config.samples_shown_max) overlays["Validation samples"].addTo(map);
  }
  // autoZIndex off: the control would stack the layers in its own order, the land over the map
  L.control.layers(layers, overlays, { collapsed: false, autoZIndex: false }).addTo(map);
  L.control.scale({ imperial: false }).addTo(map);

  map.on("click", async (ev) => {
    const { lat, lng } = ev.latlng;
    const response = await fetch(`/query?lon=${L.Util.wrapNum(lng, [-180, 180], true)}&lat=${lat}`);
    const result = await response.json();
    if (!response.ok) {
      document.getElementById("query-result").textContent = result.detail || "query failed";
      return;
    }
    L.popup().setLatLng(ev.latlng).setContent(showQuery(result)).openOn(map);
  });
  document.body.dataset.ready = "1";
}

main().catch((err) => {
  document.body.dataset.error = String(err);
  document.getElementById("query-result").textContent = `error: ${err}`;
});
