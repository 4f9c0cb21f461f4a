import hashlib
import os

from django.http import HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt


def home(request):
    return HttpResponse("<h1>Hello from Django over FastCGI</h1>")


def form(request):
    if request.method == "POST":
        return HttpResponse(f"Hello, {request.POST.get('name', '')}!", content_type="text/plain")
    return render(request, "form.html")


@csrf_exempt
def upload(request):
    upload = request.FILES["file"]
    digest = hashlib.sha256()
    for chunk in upload.chunks():
        digest.update(chunk)
    return JsonResponse({"name": upload.name, "size": upload.size, "sha256": digest.hexdigest()})


def cookies(request):
    response = HttpResponseRedirect("/whoami/")
    response.set_cookie("flavour", "oatmeal")
    response.set_cookie("colour", "blue")
    return response


def whoami(request):
    return JsonResponse(
        {
            "cookies": request.COOKIES,
            "uid": os.getuid(),
            "script_name": request.META.get("SCRIPT_NAME", ""),
            "path_info": request.path_info,
            "path": request.path,
            "build_absolute_uri": request.build_absolute_uri(),
        }
    )


def echo_path(request, rest):
    return JsonResponse({"rest": rest, "path": request.path, "path_info": request.path_info})


def boom(request):
    raise RuntimeError("Django view failed on purpose")
