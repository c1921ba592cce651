-- 1 MiB POSTed to the URL's path (/echo, /echo-stream).
wrk.method = "POST"
wrk.body = string.rep("x", 1048576)
wrk.headers["Content-Type"] = "application/octet-stream"
