"use strict";
/* Coffer: starts the interactive API viewer (Swagger UI) on /api when the
   box has it installed. A file of its own, since the Content-Security-Policy
   forbids inline script. Nothing leaves the box: the document and every
   "Try it out" request go to this origin (the CSP's connect-src 'self'
   enforces it), there is no validator badge, and the viewer takes no
   configuration from the address bar. The token pasted into "Authorize"
   lives in this page only. */
(function () {
  var root = document.getElementById("swagger-ui");
  var SwaggerUI = window.SwaggerUIBundle;
  if (!root || typeof SwaggerUI !== "function") return;
  SwaggerUI({
    domNode: root,
    url: root.getAttribute("data-spec"),
    presets: [SwaggerUI.presets.apis],
    layout: "BaseLayout",
    validatorUrl: null,
    queryConfigEnabled: false,
    persistAuthorization: false,
    deepLinking: true,
    docExpansion: "list",
    defaultModelsExpandDepth: 0
  });
})();
