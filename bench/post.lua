-- 1 MiB POST echoed back.
wrk.method = "POST"
wrk.path = "/echo"
wrk.body = string.rep("x", 1048576)
wrk.headers["Content-Type"] = "application/octet-stream"
