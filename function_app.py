"""Azure Functions entry point: registers triggers only. Each one hands off to callbacks/ or orchestrations/."""

import azure.durable_functions as df
import azure.functions as func

from callbacks import health as health_route
from callbacks import runtime

runtime.startup()

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    return health_route.health(req)
