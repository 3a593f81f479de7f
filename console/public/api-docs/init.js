// Starts Swagger UI over the OpenAPI document copied beside this page at build time (the same
// file Envoy serves at /api/v1/openapi.json). A separate file, not an inline script, so the
// page runs under a Content-Security-Policy without 'unsafe-inline'. No validator badge: it
// would send the document to validator.swagger.io, and the page makes no outside request.
/* global SwaggerUIBundle */
window.addEventListener("load", () => {
  window.ui = SwaggerUIBundle({
    url: "openapi.json",
    dom_id: "#swagger-ui",
    validatorUrl: null,
    deepLinking: true,
    docExpansion: "list",
    tryItOutEnabled: false,
    persistAuthorization: false,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    // "Try it out" calls this page's own origin (the Envoy that served it), whatever the
    // document's `servers` entry says: the page's CSP allows no other.
    requestInterceptor: (request) => {
      const url = new URL(request.url, window.location.href);
      request.url = window.location.origin + url.pathname + url.search;
      return request;
    },
  });
});
