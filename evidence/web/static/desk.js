// The legal desk: drop a PDF on the drop zone to upload it (the same form as the file input).
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll(".dropzone").forEach(function (zone) {
    var input = document.getElementById(zone.dataset.input);
    if (!input) { return; }
    zone.addEventListener("dragover", function (event) {
      event.preventDefault();
      zone.classList.add("over");
    });
    zone.addEventListener("dragleave", function () { zone.classList.remove("over"); });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      zone.classList.remove("over");
      if (!event.dataTransfer || event.dataTransfer.files.length === 0) { return; }
      input.files = event.dataTransfer.files;
      var title = input.form.querySelector("input[name=title]");
      if (title && !title.value) { title.value = input.files[0].name.replace(/\.pdf$/i, ""); }
      input.form.submit();
    });
  });
});
