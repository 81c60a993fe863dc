package report

import "html/template"

var pageTemplate = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-{{.Nonce}}'; base-uri 'none'; form-action 'none'">
<meta name="referrer" content="no-referrer">
<title>ebpf-sentry report: {{.Name}}</title>
<style>{{.Style}}</style>
</head>
<body>
<header>
<h1>Program <span id="prog-name" class="name">{{.Name}}</span></h1>
</header>
<main>
<section id="verdict" class="{{if .Blocked}}blocked{{else if .Hits}}alert{{else}}clean{{end}}">
<h2>Verdict: {{if .Judged}}{{.Action}}{{else}}not judged (no --rules){{end}}</h2>
{{- if .Hits}}
<ol class="hits">
{{- range .Hits}}
<li id="rule-{{.ID}}"><b class="rule">{{.ID}}</b> <span class="act">{{.Action}}</span> <span class="sev">{{.Severity}}</span>{{if .Description}} — {{.Description}}{{end}}
<ul>{{range .Why}}<li>{{.Text}}{{if .Insns}} at {{range .Insns}}<a href="#" class="slot" data-slot="{{.}}">{{.}}</a> {{end}}{{if .More}}… ({{.More}} more){{end}}{{end}}</li>{{end}}</ul>
</li>
{{- end}}
</ol>
{{- else if .Judged}}
<p>No rule matched.</p>
{{- end}}
</section>
<section id="meta">
<h2>Program</h2>
<table>{{range .Meta}}<tr><th>{{index . 0}}</th><td>{{index . 1}}</td></tr>{{end}}</table>
{{- if .Problems}}
<h3>Problems</h3><ul class="problems">{{range .Problems}}<li>{{.}}</li>{{end}}</ul>
{{- end}}
</section>
<section id="helpers">
<h2>Helpers</h2>
{{- if .Helpers}}
<table class="hist">{{range .Helpers}}<tr id="helper-{{.ID}}"><th>{{.Name}} <small>#{{.ID}}</small></th><td class="n">{{.Count}}</td><td class="bar"><span style="width:{{printf "%.1f" .Percent}}%"></span></td><td class="at">{{range .At}}<a href="#" class="slot" data-slot="{{.}}">{{.}}</a> {{end}}{{if .More}}… ({{.More}} more){{end}}</td></tr>{{end}}</table>
{{- else}}<p>None.</p>{{end}}
</section>
<section id="maps">
<h2>Maps</h2>
{{- if .Maps}}
<table>{{range .Maps}}<tr id="map-{{.Index}}"><th>{{.Name}}</th><td>{{.Type}}</td><td class="at">{{range .At}}<a href="#" class="slot" data-slot="{{.}}">{{.}}</a> {{end}}{{if .More}}… ({{.More}} more){{end}}</td>{{if .TailCalls}}<td class="tailcalls">tail calls: {{.TailCalls}}</td>{{end}}</tr>{{end}}</table>
{{- else}}<p>None.</p>{{end}}
</section>
<section id="strings">
<h2>Strings</h2>
{{- if .Strings}}
<table>{{range .Strings}}<tr><td><a href="#" class="slot" data-slot="{{.Insn}}">{{.Insn}}</a></td><td>{{.Kind}}</td><td class="str">"{{.Text}}"</td></tr>{{end}}</table>
{{- else}}<p>None.</p>{{end}}
</section>
<section id="code">
<div id="graph-pane">
<div class="tools"><button type="button" id="zoom-in">+</button><button type="button" id="zoom-out">−</button><button type="button" id="zoom-fit">fit</button> <span id="graph-info"></span></div>
<svg id="graph"><g id="viewport"></g></svg>
</div>
<div id="disasm-pane">
<div id="disasm"><div id="disasm-spacer"><div id="disasm-rows"></div></div></div>
</div>
</section>
</main>
<script type="application/json" id="report-data">{{.Data}}</script>
<script nonce="{{.Nonce}}">{{.Script}}</script>
</body>
</html>
`))
