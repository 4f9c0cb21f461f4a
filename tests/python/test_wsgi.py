"""PEP 3333 semantics of the Python face, over a real FastCGI connection."""

from __future__ import annotations

import hashlib
import json
import os

from conftest import start
from fcgi_client import Response, parse_cgi, request


def body_json(response):
    assert response.status == 200, response
    return json.loads(response.body)


def test_environ_values_are_latin1_native_strings(app):
    seen = body_json(request(app, "/environ", params={"HTTP_X_RAW": b"caf\xe9 \xff", "HTTP_X_UTF8": "é".encode()}))
    assert seen["HTTP_X_RAW"] == "caf\u00e9 \u00ff"
    assert seen["HTTP_X_UTF8"] == "\u00c3\u00a9", "UTF-8 bytes arrive as their latin-1 reading"
    assert seen["types"] == ["str"]
    assert seen["wsgi.version"] == [1, 0]
    assert seen["wsgi.url_scheme"] == "http"
    assert seen["wsgi.multithread"] is True
    assert seen["wsgi.multiprocess"] is False
    assert seen["wsgi.run_once"] is False
    assert seen["has_file_wrapper"] is True


def test_the_keys_pep_3333_requires_are_there_when_the_web_server_sends_none(app):
    missing = ("REQUEST_METHOD", "SCRIPT_NAME", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL")
    seen = body_json(request(app, "/environ", params=dict.fromkeys(missing)))
    assert [seen[name] for name in missing] == ["GET", "", "localhost", "80", "HTTP/1.0"]
    seen = body_json(request(app, "/environ", "POST", params={"SERVER_NAME": "example.org"}))
    assert (seen["REQUEST_METHOD"], seen["SERVER_NAME"], seen["SERVER_PROTOCOL"]) == ("POST", "example.org", "HTTP/1.1")


def test_an_environ_has_room_for_a_web_servers_params(app):
    """Each environ is a copy of a base whose table has room (environ.rs): twenty params more
    than the base's keys go in without the dict growing; many more do grow it."""
    few = body_json(request(app, "/environ"))["dict_bytes"]
    headers = {f"HTTP_X_{i}": "v" for i in range(16)}
    assert body_json(request(app, "/environ", params=headers))["dict_bytes"] == few
    headers = {f"HTTP_X_{i}": "v" for i in range(40)}
    assert body_json(request(app, "/environ", params=headers))["dict_bytes"] > few


def test_params_named_as_the_servers_wsgi_keys_do_not_replace_them(app):
    claims = {"wsgi.multithread": "no", "wsgi.run_once": "yes", "wsgi.url_scheme": "gopher", "wsgi.version": "9"}
    seen = body_json(request(app, "/environ", params=claims))
    assert (seen["wsgi.multithread"], seen["wsgi.run_once"]) == (True, False)
    assert (seen["wsgi.url_scheme"], seen["wsgi.version"]) == ("http", [1, 0])


def test_each_environ_has_its_own_requests_params(app):
    """The params' strings are kept from one request to the next (param_strings.rs): a param
    that changes its value, its name at the same position, or that comes or goes, is seen
    as sent, long values too."""
    long = "v" * 300
    sent = [
        {"HTTP_X_A": "one", "HTTP_X_B": "two", "HTTP_X_LONG": long},
        {"HTTP_X_A": "one", "HTTP_X_B": "three", "HTTP_X_LONG": long + "w"},
        {"HTTP_X_B": "two", "HTTP_X_A": "one"},
        {"HTTP_X_C": "one", "HTTP_X_A": "four", "HTTP_X_LONG": long},
        {"HTTP_X_C": "one", "HTTP_X_A": "four", "HTTP_X_LONG": long},
    ]
    for params in sent:
        seen = body_json(request(app, "/environ", params=params))
        assert {k: v for k, v in seen.items() if k.startswith("HTTP_X_")} == params


def test_multiprocess_is_true_in_the_default_pool(tmp_path):
    # Without --processes a bound socket gets a process per core: another may run the app at once.
    process, address, _ = start(tmp_path)
    try:
        seen = body_json(request(address, "/environ"))
        assert seen["wsgi.multiprocess"] is (len(os.sched_getaffinity(0)) > 1)
    finally:
        process.terminate()
        assert process.wait(10) == 0


def test_url_scheme_follows_https_and_request_scheme(app):
    assert body_json(request(app, "/environ", params={"HTTPS": "on"}))["wsgi.url_scheme"] == "https"
    assert body_json(request(app, "/environ", params={"REQUEST_SCHEME": "https"}))["wsgi.url_scheme"] == "https"


def test_required_keys_exist_even_when_not_sent(app):
    seen = body_json(request(app, "/environ", params={"SCRIPT_NAME": ""}))
    assert seen["SCRIPT_NAME"] == ""


def test_input_read_readline_readlines(app):
    seen = body_json(request(app, "/input", "POST", b"abcdef\nghij\nkl\nmn"))
    assert seen == {
        "read3": "abc",
        "readline": "def\n",
        "readline2": "gh",
        "readlines": ["ij\n", "kl\n", "mn"],
        "after_end": "",
    }


def test_input_iterates_lines(app):
    assert body_json(request(app, "/input_iter", "POST", b"a\nb\nc")) == ["a\n", "b\n", "c"]


def test_input_stops_at_content_length(app):
    response = request(app, "/input_all", "POST", b"12345", stdin=b"12345 and bytes past CONTENT_LENGTH")
    assert body_json(response) == {"body": "12345"}


def test_large_body_streams_through_input(app):
    body = os.urandom(5 << 20).hex().encode()
    echoed = json.loads(request(app, "/input_all", "POST", body).body)["body"].encode()
    assert hashlib.sha256(echoed).hexdigest() == hashlib.sha256(body).hexdigest()


def test_wsgi_errors_go_to_fcgi_stderr(app):
    response = request(app, "/errors")
    assert response.stderr == b"one line\ntwo\nthree\n"


def test_write_callable_and_iterable_both_reach_the_body(app):
    assert request(app, "/write").body == b"abc"


def test_exc_info_before_headers_replaces_them(app):
    response = request(app, "/exc_info_before")
    assert (response.status, response.body) == (503, b"replaced")


def test_exc_info_after_headers_reraises_and_the_error_is_logged(app):
    response = request(app, "/exc_info_after")
    # Cut short: the connection closes without END_REQUEST, so the web server sees it incomplete.
    assert (response.status, response.body, response.cut) == (200, b"partial", True)
    assert b"ValueError: too late" in response.stderr


def test_close_is_called(app, tmp_path):
    mark = tmp_path / "closed"
    assert request(app, f"/close?{mark}").body == b"xy"
    assert mark.read_text() == "closed"


def test_close_is_called_when_iteration_fails(app, tmp_path):
    mark = tmp_path / "closed"
    response = request(app, f"/close_on_error?{mark}")
    assert response.status == 500
    assert mark.read_text() == "closed"


def test_file_wrapper_streams_a_file(app, tmp_path):
    data = os.urandom(300_000)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    assert request(app, f"/file?{path}").body == data


def test_an_exception_is_a_short_500_and_a_logged_traceback(app):
    response = request(app, "/raise")
    assert response.status == 500
    assert response.body == b"Internal Server Error\n"
    assert b"RuntimeError: the app failed on purpose" in response.stderr
    assert b"Traceback" not in response.body
    assert request(app, "/write").body == b"abc", "the worker survives"


def test_debug_shows_the_traceback(debug_app):
    response = request(debug_app, "/raise")
    assert response.status == 500
    assert b"RuntimeError: the app failed on purpose" in response.body


def test_header_injection_is_refused(app):
    response = request(app, "/bad_header")
    assert response.status == 500
    assert response.header("Set-Cookie") is None
    assert b"line break" in response.stderr


def test_start_response_called_again_without_exc_info_is_refused(app):
    for query, body in (("before", b"refused"), ("after", b"sent, refused")):
        response = request(app, f"/start_twice?{query}")
        assert (response.status, response.body) == (200, body), query


def test_headers_may_be_any_iterable_of_pairs(app):
    for query, origin in (("tuple", "a tuple"), ("generator", "a generator")):
        response = request(app, f"/headers_not_a_list?{query}")
        assert (response.status, response.header("X-From"), response.body) == (200, origin, b"ok")


def test_headers_must_be_latin1(app):
    for path in ("/not_latin1", "/surrogate_header"):
        response = request(app, path)
        assert response.status == 500, path
        assert b"is not latin-1" in response.stderr, path
    response = request(app, "/bytes_header")
    assert response.status == 500
    assert b"header name must be a str" in response.stderr
    # The ASCII header goes out as the str's own bytes, the latin-1 one as a copy: both exact.
    response = request(app, "/latin1")
    assert b"Status: 200 OK\r\nX-Name: caf\xe9\r\n" in response.stdout


def test_str_chunks_are_an_error(app):
    response = request(app, "/str_body")
    assert response.status == 500
    assert b"not bytes" in response.stderr


def test_single_chunk_gets_a_content_length(app):
    response = request(app, "/single")
    assert response.header("Content-Length") == "12"
    assert response.body == b"twelve bytes"


def test_generators_and_empty_chunks(app):
    assert request(app, "/generator").body == b"generated"
    response = request(app, "/empty")
    assert (response.status, response.body) == (204, b"")


def test_cgi_mode_runs_once(cgi_env):
    result = cgi_env("/environ")
    assert result.returncode == 0, result.stderr
    seen = json.loads(parse_cgi(Response(stdout=result.stdout)).body)
    assert seen["wsgi.run_once"] is True
    assert seen["wsgi.multiprocess"] is True
    assert seen["wsgi.multithread"] is False


def test_cgi_mode_reads_the_body_from_stdin(cgi_env):
    result = cgi_env("/input_all", b"posted body", REQUEST_METHOD="POST")
    assert json.loads(parse_cgi(Response(stdout=result.stdout)).body) == {"body": "posted body"}


def test_cgi_mode_error_page(cgi_env):
    result = cgi_env("/raise")
    response = parse_cgi(Response(stdout=result.stdout))
    assert response.status == 500
    assert b"RuntimeError" in result.stderr
