/// The status page at `/`: one self-contained HTML document (styles inline, no script, no
/// external asset) rendered from a ``StatusReport`` and reloading itself every few seconds.
/// The pipeline is drawn as inline SVG: sources, routes and targets in three columns.
/// Every row carries `data-` attributes (name, state, rate) for tools and tests.
enum StatusPage {
    static func render(_ report: StatusReport, refreshSeconds: Int = 2) -> String {
        var html = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            """
        if refreshSeconds > 0 { html += "<meta http-equiv=\"refresh\" content=\"\(refreshSeconds)\">" }
        html += "<title>\(escape(report.name ?? "switchyard")) · Switchyard</title><style>\(style)</style></head><body>"
        html += header(report)
        html += graph(report)
        html += sourcesTable(report)
        html += targetsTable(report)
        html += footer(report, refreshSeconds: refreshSeconds)
        html += "</body></html>\n"
        return html
    }

    static let style = """
        body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#1f2937;background:#f9fafb}
        h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}
        .badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600}
        .ok{background:#dcfce7;color:#166534}.warn{background:#fef3c7;color:#92400e}.bad{background:#fee2e2;color:#991b1b}.idle{background:#e5e7eb;color:#374151}
        table{border-collapse:collapse;background:#fff;width:100%;box-shadow:0 1px 2px #0001}
        th,td{padding:6px 10px;border-bottom:1px solid #e5e7eb;text-align:left;vertical-align:top}
        th{font-size:12px;color:#6b7280;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
        .meta{color:#6b7280}.err{color:#991b1b;font-size:12px;max-width:420px;overflow-wrap:anywhere}
        svg{background:#fff;box-shadow:0 1px 2px #0001;max-width:100%}svg text{font:12px system-ui,Helvetica,Arial,sans-serif}
        ul.reasons{margin:6px 0;color:#991b1b}
        """

    static func header(_ report: StatusReport) -> String {
        var html = "<header><h1 id=\"name\">\(escape(report.name ?? "switchyard"))</h1><div class=\"meta\">"
        html +=
            report.ready
            ? "<span id=\"readiness\" class=\"badge ok\" data-ready=\"true\">ready</span>"
            : "<span id=\"readiness\" class=\"badge bad\" data-ready=\"false\">not ready</span>"
        if report.draining { html += " <span class=\"badge warn\">draining</span>" }
        html += " generation \(report.generation) · up \(duration(report.uptimeSeconds))"
        html += " · in flight \(count(report.inflight.messages)) messages, \(bytes(report.inflight.bytes))"
        html += " · memory \(bytes(report.memory.usedBytes)) of \(bytes(report.memory.limitBytes))"
        if report.tap.enabled { html += " · tap enabled (\(report.tap.attached.count) attached)" }
        html += "</div>"
        if !report.reasons.isEmpty {
            html += "<ul class=\"reasons\">" + report.reasons.map { "<li>\(escape($0))</li>" }.joined() + "</ul>"
        }
        return html + "</header>"
    }

    static func stateClass(_ state: String) -> String {
        switch state {
        case "running": "ok"
        case "connecting", "stopping", "paused": "warn"
        case "finished": "idle"
        default: "bad"
        }
    }

    static func rate(_ value: Double?) -> String {
        guard let value else { return "–" }
        if value >= 100 { return count(Int(value.rounded())) }
        let tenths = (value * 10).rounded() / 10
        return tenths == tenths.rounded() ? String(Int(tenths)) : String(tenths)
    }

    /// The pipeline in three columns; an edge per route hop, dashed to the dead-letter target.
    static func graph(_ report: StatusReport) -> String {
        let boxWidth = 200, boxHeight = 52, gap = 16, columns = [20, 300, 580]
        let rows = max(report.sources.count, report.routes.count, report.targets.count, 1)
        let height = rows * (boxHeight + gap) + gap
        let width = columns[2] + boxWidth + 20
        func y(_ index: Int) -> Int { gap + index * (boxHeight + gap) }
        var svg =
            "<h2>Pipeline</h2><svg id=\"pipeline\" role=\"img\" aria-label=\"pipeline\" width=\"\(width)\" height=\"\(height)\" viewBox=\"0 0 \(width) \(height)\">"
        svg +=
            "<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"6\" markerHeight=\"6\" orient=\"auto\"><path d=\"M0,0L10,5L0,10z\" fill=\"#9ca3af\"/></marker></defs>"
        let sourceIndex = Dictionary(report.sources.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { first, _ in first })
        let targetIndex = Dictionary(report.targets.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { first, _ in first })
        func edge(_ x1: Int, _ y1: Int, _ x2: Int, _ y2: Int, dashed: Bool = false) -> String {
            let middle = (x1 + x2) / 2
            return
                "<path d=\"M\(x1),\(y1) C\(middle),\(y1) \(middle),\(y2) \(x2),\(y2)\" fill=\"none\" stroke=\"#9ca3af\" stroke-width=\"1.5\"\(dashed ? " stroke-dasharray=\"5,4\"" : "") marker-end=\"url(#arrow)\"/>"
        }
        for (index, route) in report.routes.enumerated() {
            let routeY = y(index) + boxHeight / 2
            for name in route.from {
                if let s = sourceIndex[name] { svg += edge(columns[0] + boxWidth, y(s) + boxHeight / 2, columns[1], routeY) }
            }
            for name in route.to {
                if let t = targetIndex[name] { svg += edge(columns[1] + boxWidth, routeY, columns[2], y(t) + boxHeight / 2) }
            }
        }
        if let deadLetter = report.targets.firstIndex(where: \.deadLetter) {
            let routed = Set(report.routes.flatMap(\.to))
            for (index, target) in report.targets.enumerated() where !target.deadLetter && routed.contains(target.name) {
                let x = columns[2] + boxWidth
                svg +=
                    "<path d=\"M\(x),\(y(index) + boxHeight / 2) C\(x + 18),\(y(index) + boxHeight / 2) \(x + 18),\(y(deadLetter) + boxHeight / 2) \(x),\(y(deadLetter) + boxHeight / 2)\" fill=\"none\" stroke=\"#f87171\" stroke-width=\"1.2\" stroke-dasharray=\"4,3\"/>"
            }
        }
        func box(_ x: Int, _ index: Int, role: String, name: String, line2: String, state: String?, fill: String) -> String {
            let stroke: String
            switch state.map(stateClass) {
            case "bad": stroke = "#dc2626"
            case "warn": stroke = "#d97706"
            default: stroke = "#9ca3af"
            }
            var text =
                "<g class=\"node\" data-role=\"\(role)\" data-name=\"\(escape(name))\"\(state.map { " data-state=\"\(escape($0))\"" } ?? "")>"
            text +=
                "<rect x=\"\(x)\" y=\"\(y(index))\" width=\"\(boxWidth)\" height=\"\(boxHeight)\" rx=\"8\" fill=\"\(fill)\" stroke=\"\(stroke)\"/>"
            text += "<text x=\"\(x + 10)\" y=\"\(y(index) + 20)\" font-weight=\"600\">\(escape(clip(name, 26)))</text>"
            text += "<text x=\"\(x + 10)\" y=\"\(y(index) + 38)\" fill=\"#4b5563\">\(escape(clip(line2, 30)))</text></g>"
            return text
        }
        for (index, source) in report.sources.enumerated() {
            svg += box(
                columns[0], index, role: "source", name: source.name,
                line2: "\(source.kind) · \(source.state) · \(rate(source.ratePerSecond))/s", state: source.state, fill: "#dbeafe")
        }
        for (index, route) in report.routes.enumerated() {
            svg += box(
                columns[1], index, role: "route", name: route.name, line2: route.filtered ? "filtered" : "every message", state: nil,
                fill: "#f3f4f6")
        }
        for (index, target) in report.targets.enumerated() {
            svg += box(
                columns[2], index, role: "target", name: target.name,
                line2: "\(target.kind) · \(target.state) · \(rate(target.ratePerSecond))/s", state: target.state,
                fill: target.deadLetter ? "#fee2e2" : "#dcfce7")
        }
        return svg + "</svg>"
    }

    static func errorCell(_ error: StatusReport.LastError?) -> String {
        guard let error else { return "<td class=\"err\"></td>" }
        return "<td class=\"err\">\(escape(clip(error.message, 400)))<br><span class=\"meta\">\(duration(error.ageSeconds)) ago</span></td>"
    }

    static func stateCell(_ state: String, _ reason: String?) -> String {
        var cell = "<td><span class=\"badge \(stateClass(state))\">\(escape(state))</span>"
        if let reason { cell += "<div class=\"err\">\(escape(clip(reason, 400)))</div>" }
        return cell + "</td>"
    }

    static func sourcesTable(_ report: StatusReport) -> String {
        var html =
            "<h2>Sources</h2><table id=\"sources\"><tr><th>source</th><th>kind</th><th>state</th><th>rate/s</th><th>messages</th><th>acknowledged</th><th>in flight</th><th>lag</th><th>oldest unacked</th><th>last error</th></tr>"
        for source in report.sources {
            html +=
                "<tr data-source=\"\(escape(source.name))\" data-state=\"\(escape(source.state))\" data-rate=\"\(source.ratePerSecond.map { String($0) } ?? "")\">"
            html +=
                "<td>\(escape(source.name))\(source.notes.map { "<div class=\"meta\">\(escape($0))</div>" }.joined())</td><td>\(escape(source.kind))</td>"
            html += stateCell(source.state, source.reason)
            html +=
                "<td class=\"n\">\(rate(source.ratePerSecond))</td><td class=\"n\">\(count(source.messages))</td><td class=\"n\">\(count(source.acknowledged))</td>"
            html +=
                "<td class=\"n\">\(count(source.inflight))</td><td class=\"n\">\(count(source.lag))</td><td class=\"n\">\(duration(source.oldestUnackedSeconds))</td>"
            html += errorCell(source.lastError) + "</tr>"
        }
        return html + "</table>"
    }

    static func targetsTable(_ report: StatusReport) -> String {
        var html =
            "<h2>Targets</h2><table id=\"targets\"><tr><th>target</th><th>kind</th><th>state</th><th>rate/s</th><th>written</th><th>retried</th><th>dead-lettered</th><th>queued</th><th>last error</th></tr>"
        for target in report.targets {
            html +=
                "<tr data-target=\"\(escape(target.name))\" data-state=\"\(escape(target.state))\" data-rate=\"\(target.ratePerSecond.map { String($0) } ?? "")\">"
            html +=
                "<td>\(escape(target.name))\(target.deadLetter ? " <span class=\"badge idle\">dead letters</span>" : "")</td><td>\(escape(target.kind))</td>"
            html += stateCell(target.state, target.reason)
            html +=
                "<td class=\"n\">\(rate(target.ratePerSecond))</td><td class=\"n\">\(count(target.written))</td><td class=\"n\">\(count(target.retried))</td>"
            html += "<td class=\"n\">\(count(target.deadLettered))</td><td class=\"n\">\(count(target.queued))</td>"
            html += errorCell(target.lastError) + "</tr>"
        }
        return html + "</table>"
    }

    static func footer(_ report: StatusReport, refreshSeconds: Int) -> String {
        var html = "<p class=\"meta\">"
        html +=
            refreshSeconds > 0
            ? "Reloads every \(refreshSeconds) s (<a href=\"/?refresh=0\">stop</a>). "
            : "Not reloading (<a href=\"/\">reload every 2 s</a>). "
        html +=
            "The same data as JSON: <a href=\"/status\">/status</a> · <a href=\"/metrics\">/metrics</a> · <a href=\"/readyz\">/readyz</a></p>"
        return html
    }

    // MARK: - Formatting

    static func escape(_ text: String) -> String {
        var output = ""
        output.reserveCapacity(text.utf8.count)
        for character in text {
            switch character {
            case "&": output += "&amp;"
            case "<": output += "&lt;"
            case ">": output += "&gt;"
            case "\"": output += "&quot;"
            case "'": output += "&#39;"
            default: output.append(character)
            }
        }
        return output
    }

    static func clip(_ text: String, _ limit: Int) -> String {
        text.count <= limit ? text : String(text.prefix(limit - 1)) + "…"
    }

    static func count(_ value: Int) -> String {
        let digits = String(value.magnitude)
        var grouped = ""
        for (index, digit) in digits.enumerated() {
            if index > 0 && (digits.count - index) % 3 == 0 { grouped += "," }
            grouped.append(digit)
        }
        return (value < 0 ? "-" : "") + grouped
    }

    static func bytes(_ value: Int) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var amount = Double(value)
        var unit = 0
        while amount >= 1024 && unit < units.count - 1 {
            amount /= 1024
            unit += 1
        }
        return unit == 0 ? "\(value) B" : "\((amount * 10).rounded() / 10) \(units[unit])"
    }

    static func duration(_ seconds: Double) -> String {
        if seconds < 1 { return seconds <= 0 ? "0 s" : "\(Int((seconds * 1000).rounded())) ms" }
        if seconds < 120 { return "\(Int(seconds.rounded())) s" }
        if seconds < 7200 { return "\(Int((seconds / 60).rounded())) min" }
        return "\((seconds / 360).rounded() / 10) h"
    }
}
