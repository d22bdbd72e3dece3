# Print the name of every function a header declares with VIOMMU_API, one a
# line. Comments and preprocessor lines (with their continuations) are
# dropped first; a declaration may span lines.
{ text = text $0 "\n" }
END {
	while ((s = index(text, "/*")) > 0) {
		rest = substr(text, s + 2)
		e = index(rest, "*/")
		if (e == 0) { text = substr(text, 1, s - 1); break }
		text = substr(text, 1, s - 1) " " substr(rest, e + 2)
	}
	n = split(text, lines, "\n")
	body = ""
	cont = 0
	for (i = 1; i <= n; i++) {
		l = lines[i]
		if (cont || l ~ /^[ \t]*#/) {
			cont = (l ~ /\\$/)
			continue
		}
		sub(/\/\/.*/, "", l)
		body = body " " l
	}
	m = split(body, stmts, /[;{}]/)
	for (i = 1; i <= m; i++) {
		s = stmts[i]
		if (s !~ /(^|[^A-Za-z0-9_])VIOMMU_API[^A-Za-z0-9_]/)
			continue
		p = index(s, "(")
		if (p == 0)
			continue
		pre = substr(s, 1, p - 1)
		sub(/[ \t]+$/, "", pre)
		if (match(pre, /[A-Za-z_][A-Za-z0-9_]*$/))
			print substr(pre, RSTART, RLENGTH)
	}
}
