(function () {
  'use strict';
  var D = JSON.parse(document.getElementById('report-data').textContent);
  var ROW = 18, LINE = 14, CHARW = 7.2, MAXROWS = 200, MAXCOLS = 90;
  // Instructions: TEXT[pos], SLOT[pos] (from the two-slot positions) and
  // TGT[pos], the slot a jump or call goes to (-1 for none).
  var TEXT = D.text === '' ? [] : D.text.split('\n');
  var N = TEXT.length;
  var SLOT = new Int32Array(N), TGT = new Int32Array(N).fill(-1);
  for (var p = 0, w = 0, wi = 0; p < N; p++) {
    SLOT[p] = p + w;
    if (D.wide[wi] === p) { w++; wi++; }
  }
  for (var j = 0; j < D.jumps.length; j += 2) TGT[D.jumps[j]] = D.jumps[j + 1];
  function posOfSlot(slot) {
    var lo = 0, hi = N;
    while (lo < hi) { var m = (lo + hi) >> 1; if (SLOT[m] < slot) lo = m + 1; else hi = m; }
    return lo < N && SLOT[lo] === slot ? lo : undefined;
  }
  var blockOfPos = new Int32Array(N);
  D.blocks.forEach(function (b, id) { for (var p = b[0]; p <= b[1]; p++) blockOfPos[p] = id; });
  var marksAt = new Map();
  D.marks.forEach(function (m) { if (!marksAt.has(m[0])) marksAt.set(m[0], []); marksAt.get(m[0]).push(m); });
  // Jumps and calls into each instruction, for the links back: built after
  // the first paint.
  var from = new Map();
  function buildFrom() {
    for (var j = 0; j < D.jumps.length; j += 2) {
      var t = D.jumps[j + 1];
      if (!from.has(t)) from.set(t, []);
      from.get(t).push(SLOT[D.jumps[j]]);
    }
    shown = [-1, -1];
    renderRows();
  }

  // ---- disassembly: only the rows in view exist ----
  var dis = document.getElementById('disasm');
  var spacer = document.getElementById('disasm-spacer');
  var rows = document.getElementById('disasm-rows');
  spacer.style.height = (N * ROW) + 'px';
  var selected = -1;
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function slotLink(slot, text) {
    var a = el('a', 'slot', text);
    a.href = '#';
    a.dataset.slot = slot;
    return a;
  }
  function anchorLink(id, text) {
    var a = el('a', '', text);
    a.href = '#' + id;
    return a;
  }
  function row(p) {
    var d = el('div', 'row');
    d.dataset.pos = p;
    d.dataset.slot = SLOT[p];
    d.appendChild(el('span', 'i', SLOT[p] + ':'));
    d.appendChild(el('span', 't', TEXT[p]));
    if (TGT[p] >= 0) d.appendChild(slotLink(TGT[p], '\u2192' + TGT[p]));
    var back = from.get(SLOT[p]);
    if (back) {
      back.slice(0, 4).forEach(function (s) { d.appendChild(slotLink(s, '\u2190' + s)); });
      if (back.length > 4) d.appendChild(el('span', '', ' \u2026' + (back.length - 4)));
    }
    if (D.helper[p] !== undefined) d.appendChild(anchorLink('helper-' + D.helper[p], 'helper'));
    if (D.map[p] !== undefined) d.appendChild(anchorLink('map-' + D.map[p], 'map'));
    var ms = marksAt.get(p);
    if (ms) {
      ms.forEach(function (m) {
        var b = el(m[1] === 'rule' ? 'a' : 'span', 'badge ' + m[1], m[1] === 'rule' ? m[2] : m[3]);
        if (m[1] === 'rule') { b.href = '#rule-' + m[2]; d.classList.add('mk'); }
        b.title = m[3];
        d.appendChild(b);
      });
    }
    if (p === selected) d.classList.add('hl');
    return d;
  }
  var shown = [-1, -1];
  function renderRows() {
    var top = dis.scrollTop, h = dis.clientHeight || 600;
    var a = Math.max(0, Math.floor(top / ROW) - 30);
    var b = Math.min(N, Math.ceil((top + h) / ROW) + 30);
    if (a === shown[0] && b === shown[1]) return;
    shown = [a, b];
    rows.style.top = (a * ROW) + 'px';
    var f = document.createDocumentFragment();
    for (var p = a; p < b; p++) f.appendChild(row(p));
    rows.replaceChildren(f);
  }
  dis.addEventListener('scroll', renderRows);

  // ---- graph: laid out in Go, only the part in view is drawn ----
  var svg = document.getElementById('graph');
  var vp = document.getElementById('viewport');
  var NS = svg.namespaceURI;
  var view = { x: 0, y: 0, s: 1 };
  var drawn = 0;
  function sv(tag, attrs, text) {
    var e = document.createElementNS(NS, tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function size() { var r = svg.getBoundingClientRect(); return { w: r.width || 800, h: r.height || 600 }; }
  function inView(x, y, w, h, v) { return x + w >= v.x0 && x <= v.x1 && y + h >= v.y0 && y <= v.y1; }
  var pending = false;
  function draw() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(function () { pending = false; drawNow(); });
  }
  function drawNow() {
    var sz = size();
    var v = { x0: -view.x / view.s, y0: -view.y / view.s };
    v.x1 = v.x0 + sz.w / view.s;
    v.y1 = v.y0 + sz.h / view.s;
    vp.setAttribute('transform', 'translate(' + view.x + ',' + view.y + ') scale(' + view.s + ')');
    var f = document.createDocumentFragment();
    D.funcs.forEach(function (fn, id) {
      if (!inView(fn[0], fn[1], fn[2], fn[3], v)) return;
      f.appendChild(sv('rect', { 'class': 'func', x: fn[0], y: fn[1], width: fn[2], height: fn[3] }));
      f.appendChild(sv('text', { 'class': 'funclabel', x: fn[0] + 6, y: fn[1] + 14 }, 'func_' + id + ' (insn ' + fn[4] + ')'));
    });
    var visible = new Uint8Array(D.blocks.length);
    var text = view.s >= 0.3;
    drawn = 0;
    var gb = document.createDocumentFragment();
    for (var id = 0; id < D.blocks.length; id++) {
      var b = D.blocks[id];
      if (!inView(b[3], b[4], b[5], b[6], v)) continue;
      visible[id] = 1;
      if (drawn >= 3000) continue;
      drawn++;
      var g = sv('g', { 'class': 'block' + (b[7] ? ' rule' : '') + (blockOfPos[selected] === id && selected >= 0 ? ' sel' : '') });
      g.dataset.block = id;
      g.appendChild(sv('rect', { x: b[3], y: b[4], width: b[5], height: b[6], rx: 3 }));
      if (text) {
        var n = Math.min(b[1] - b[0] + 1, MAXROWS);
        for (var k = 0; k < n; k++) {
          var y = b[4] + 5 + (k + 1) * LINE - 3;
          if (y < v.y0 - LINE || y > v.y1 + LINE) continue;
          var t = SLOT[b[0] + k] + ': ' + TEXT[b[0] + k];
          if (t.length > MAXCOLS) t = t.slice(0, MAXCOLS - 1) + '\u2026';
          g.appendChild(sv('text', { x: b[3] + 6, y: y }, t));
        }
        if (b[1] - b[0] + 1 > MAXROWS) g.appendChild(sv('text', { x: b[3] + 6, y: b[4] + 5 + (MAXROWS + 1) * LINE - 3 }, '\u2026 ' + (b[1] - b[0] + 1 - MAXROWS) + ' more'));
      }
      gb.appendChild(g);
    }
    var ge = document.createDocumentFragment(), edges = 0;
    for (var i = 0; i < D.edges.length && edges < 6000; i++) {
      var e = D.edges[i];
      if (e[1] < 0 || !(visible[e[0]] || visible[e[1]])) continue;
      var s = D.blocks[e[0]], t2 = D.blocks[e[1]];
      var x1 = s[3] + s[5] / 2, y1 = s[4] + s[6], x2 = t2[3] + t2[5] / 2, y2 = t2[4];
      var d;
      if (e[2] === 'call') {
        d = 'M' + (s[3] + s[5]) + ',' + (s[4] + s[6] / 2) + ' L' + t2[3] + ',' + (t2[4] + 8);
      } else if (y2 > y1) {
        var my = (y1 + y2) / 2;
        d = 'M' + x1 + ',' + y1 + ' C' + x1 + ',' + my + ' ' + x2 + ',' + my + ' ' + x2 + ',' + y2;
      } else { // back edge: around the right side
        var rx = Math.max(s[3] + s[5], t2[3] + t2[5]) + 20;
        d = 'M' + x1 + ',' + y1 + ' C' + rx + ',' + (y1 + 30) + ' ' + rx + ',' + (y2 - 30) + ' ' + x2 + ',' + y2;
      }
      ge.appendChild(sv('path', { 'class': 'e-' + e[2], d: d }));
      edges++;
    }
    f.appendChild(ge);
    f.appendChild(gb);
    vp.replaceChildren(f);
    document.getElementById('graph-info').textContent = D.blocks.length + ' blocks, ' + drawn + ' drawn, zoom ' + view.s.toFixed(2);
  }
  function fit() {
    var sz = size();
    view.s = Math.max(0.3, Math.min(1, sz.w / D.w, sz.h / D.h));
    view.x = 0; view.y = 0;
    draw();
  }
  function zoom(f, cx, cy) {
    var sz = size();
    if (cx === undefined) { cx = sz.w / 2; cy = sz.h / 2; }
    var s = Math.min(4, Math.max(0.02, view.s * f));
    view.x = cx - (cx - view.x) * s / view.s;
    view.y = cy - (cy - view.y) * s / view.s;
    view.s = s;
    draw();
  }
  svg.addEventListener('wheel', function (ev) {
    ev.preventDefault();
    var r = svg.getBoundingClientRect();
    zoom(ev.deltaY < 0 ? 1.15 : 1 / 1.15, ev.clientX - r.left, ev.clientY - r.top);
  }, { passive: false });
  var drag = null, moved = false;
  svg.addEventListener('mousedown', function (ev) { drag = [ev.clientX, ev.clientY, view.x, view.y]; moved = false; });
  window.addEventListener('mousemove', function (ev) {
    if (!drag) return;
    var dx = ev.clientX - drag[0], dy = ev.clientY - drag[1];
    if (Math.abs(dx) + Math.abs(dy) > 3) moved = true;
    view.x = drag[2] + dx; view.y = drag[3] + dy;
    draw();
  });
  window.addEventListener('mouseup', function () { drag = null; });
  svg.addEventListener('click', function (ev) {
    if (moved) return;
    var g = ev.target.closest('.block');
    if (g) goToPos(D.blocks[+g.dataset.block][0], false);
  });
  document.getElementById('zoom-in').addEventListener('click', function () { zoom(1.25); });
  document.getElementById('zoom-out').addEventListener('click', function () { zoom(0.8); });
  document.getElementById('zoom-fit').addEventListener('click', fit);

  // ---- cross-links ----
  function centerOn(id) {
    var b = D.blocks[id], sz = size();
    if (view.s < 0.3) view.s = 0.6;
    view.x = sz.w / 2 - (b[3] + b[5] / 2) * view.s;
    view.y = 40 - b[4] * view.s;
  }
  function goToPos(p, moveGraph) {
    if (p < 0 || p >= N) return;
    selected = p;
    dis.scrollTop = Math.max(0, p * ROW - ROW * 2);
    shown = [-1, -1];
    renderRows();
    if (moveGraph) centerOn(blockOfPos[p]);
    draw();
    dis.scrollIntoView({ block: 'nearest' });
  }
  function goToSlot(slot) {
    var p = posOfSlot(slot);
    if (p !== undefined) goToPos(p, true);
  }
  document.addEventListener('click', function (ev) {
    var a = ev.target.closest('a.slot');
    if (!a) return;
    ev.preventDefault();
    goToSlot(+a.dataset.slot);
  });
  window.addEventListener('resize', function () { shown = [-1, -1]; renderRows(); draw(); });

  renderRows();
  fit();
  drawNow();
  setTimeout(buildFrom, 0);
  // For tests and for the console: what is drawn, and navigation.
  window.sentryReport = {
    blocks: D.blocks.length,
    drawn: function () { return drawn; },
    goToSlot: goToSlot,
    selected: function () { return selected < 0 ? -1 : SLOT[selected]; }
  };
})();
