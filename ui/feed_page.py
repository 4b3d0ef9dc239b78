"""The small HTML page of ``python -m ui feeds`` (``GET /``): one feed shown live with the
browser's own ``EventSource``, which resumes by itself with ``Last-Event-ID``.

``?feed=predictions|metrics|drift`` picks the feed, ``?from=beginning`` starts at the topic's start.
"""

__all__ = ["PAGE"]

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>kappaml live feed</title>
<style>body{font-family:sans-serif;margin:2em}li{font-family:monospace;font-size:12px}</style></head>
<body><h1>kappaml live feed: <span id="feed"></span></h1>
<p>Connection: <b id="status">connecting</b> &middot; events received: <b id="count">0</b>
&middot; last event id: <code id="last-id">-</code></p>
<ol id="events" reversed></ol>
<script>
const params = new URLSearchParams(location.search);
const feed = ["metrics", "drift"].includes(params.get("feed")) ? params.get("feed") : "predictions";
const start = params.get("from") === "beginning" ? "beginning" : "end";
const type = feed === "predictions" ? "prediction" : feed;
document.getElementById("feed").textContent = feed;
const list = document.getElementById("events");
let count = 0;
const source = new EventSource("/streams/" + feed + "?from=" + start);
source.onopen = () => { document.getElementById("status").textContent = "open"; };
source.onerror = () => { document.getElementById("status").textContent = "reconnecting"; };
source.addEventListener(type, (e) => {
  count += 1;
  document.getElementById("count").textContent = String(count);
  document.getElementById("last-id").textContent = e.lastEventId;
  const item = document.createElement("li");
  item.className = "event";
  item.dataset.id = e.lastEventId;
  item.textContent = e.data;
  list.prepend(item);
  while (list.children.length > 100) list.removeChild(list.lastChild);
});
</script></body></html>
"""
